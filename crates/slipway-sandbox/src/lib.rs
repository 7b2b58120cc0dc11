//! slipway-sandbox
