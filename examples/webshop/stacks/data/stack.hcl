# Where orders and shop assets live. Holds data: its blast radius matters most.
stack {
  team       = "shop"
  capability = "data"
}
