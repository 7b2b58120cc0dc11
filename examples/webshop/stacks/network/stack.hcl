# The network every other stack runs in. Changes rarely; owned by the platform team.
stack {
  team       = "platform"
  capability = "networking"
}
