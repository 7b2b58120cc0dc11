-- The branch a pull request (merge request) asks to be merged into: what it changes is
-- measured from where its head branched from that branch. NULL for pushes, and for
-- deliveries kept before this column existed (the delivered branch is used then).
ALTER TABLE webhook_deliveries ADD COLUMN base_ref TEXT;
