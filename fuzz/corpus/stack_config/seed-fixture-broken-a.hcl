stack {
  teem = "platform"
}

dependency "c" {
  path = "../c"
}
