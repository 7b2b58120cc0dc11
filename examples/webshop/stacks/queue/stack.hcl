# The queue new orders go through on their way to the app.
stack {
  team       = "shop"
  capability = "messaging"
}

# Run after every apply to an instance in drills and recovery: the queue's outputs must be
# there and look like an SQS queue of this instance.
check "queue" {
  expect = {
    queue_url = "/webshop-[a-z0-9-]+-orders$"
    queue_arn = "^arn:aws:sqs:"
  }
  command = ["sh", "-c", "test -n \"$SLIPWAY_OUTPUT_QUEUE_URL\" && echo \"queue at $SLIPWAY_OUTPUT_QUEUE_URL\""]
}
