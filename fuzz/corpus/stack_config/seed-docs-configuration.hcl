stack {
  name        = "app"        # default: the folder's name; names must be unique
  team        = "shop"
  capability  = "compute"
  description = "The app's identity and network access"
}

dependency "network" {
  path = "../network"        # relative to this stack's folder
}

inputs = {
  vpc_id = dependency.network.outputs.vpc_id
}
