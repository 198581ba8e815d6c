//! The ingest API's scripts, one module beside each: admitting a group's plain requests, and
//! one request under an `Idempotency-Key`; taking a rate-limited caller's allowance. Both share `admit.lua` (the count of what stays
//! queued, and putting messages back), prepended to each.

pub mod admit_idempotent;
pub mod admit_plain;
pub mod take_allowance;

/// What both admit scripts share.
const ADMIT: &str = include_str!("lua/admit.lua");

#[cfg(test)]
mod tests {
    use sluice_core::Keys;
    use sluice_core::lua::eval;

    use crate::queue::Retention;

    #[test]
    fn every_ingest_script_names_only_keys_it_is_given() {
        let keys = Keys::new("");
        let plain = super::admit_plain::AdmitPlain {
            bound: 1,
            second: 1,
            trim: false,
            counts: &[1],
        };
        let idempotent = super::admit_idempotent::AdmitIdempotent {
            key: "idempotency:k",
            bound: 1,
            retention: Retention {
                ttl_secs: 1,
                max_keys: 1,
                max_bytes: 1,
            },
            answer: "{}",
            count: 1,
        };
        assert!(eval(&keys, &plain, 0).is_ok());
        let allowance = super::take_allowance::TakeAllowance {
            key: "allowance:k",
            limit: sluice_core::auth::Limit::new(1, 1),
            want: 1,
        };
        assert!(eval(&keys, &allowance, 0).is_ok());
        assert!(eval(&keys, &idempotent, 0).is_ok());
    }
}
