//! Only the bench in benches/ matters here.
