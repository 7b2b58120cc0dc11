//! slipway-plan
