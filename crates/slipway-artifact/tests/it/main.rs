//! Integration tests of slipway-artifact, compiled into one test binary.

mod bundle;
mod extract;
mod fixture;
mod s3;
mod store;
