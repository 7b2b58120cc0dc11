check "queue" {
  # Output name -> regular expression its value must match (non-strings as JSON).
  expect = {
    queue_url = "/webshop-[a-z0-9-]+-orders$"
    queue_arn = "^arn:aws:sqs:"
  }
  # Run in the stack's folder of the working copy, with every output in the environment.
  command = ["sh", "-c", "test -n \"$SLIPWAY_OUTPUT_QUEUE_URL\""]
}
