# The queue new orders go through on their way to the app.
stack {
  team       = "shop"
  capability = "messaging"
}
