# The app's identity and network access. Consumes the other three stacks' outputs, so it
# is applied last and is downstream of every change to them.
stack {
  team       = "shop"
  capability = "compute"
}

dependency "network" {
  path = "../network"
}

dependency "data" {
  path = "../data"
}

dependency "queue" {
  path = "../queue"
}

inputs = {
  vpc_id    = dependency.network.outputs.vpc_id
  table_arn = dependency.data.outputs.table_arn
  queue_arn = dependency.queue.outputs.queue_arn
}
