//! slipway-artifact
