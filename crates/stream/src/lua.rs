//! The stream's scripts, one module beside each: the alert transitions, and the worker list.

pub mod alert_fire;
pub mod alert_outage;
pub mod alert_refresh;
pub mod alert_resolve;
pub mod workers;

#[cfg(test)]
mod tests {
    use sluice_core::Keys;
    use sluice_core::lua::eval;

    #[test]
    fn every_stream_script_names_only_keys_it_is_given() {
        let keys = Keys::new("");
        let fire = super::alert_fire::Fire {
            rule: "r",
            alert: "{}",
        };
        let resolve = super::alert_resolve::Resolve {
            rule: "r",
            resolved_at: "t",
            value: 1.0,
            summary: "s",
        };
        let outage = super::alert_outage::Outage {
            firing: "{}",
            resolved: "{}",
            started_at: "t",
        };
        assert!(eval(&keys, &fire, 0).is_ok());
        assert!(eval(&keys, &resolve, 0).is_ok());
        assert!(eval(&keys, &outage, 0).is_ok());
        let refresh = super::alert_refresh::Refresh {
            rule: "r",
            started_at: "t",
            alert: "{}",
        };
        assert!(eval(&keys, &refresh, 0).is_ok());
        assert!(
            eval(
                &keys,
                &super::workers::ListWorkers {
                    processing_prefix: "p"
                },
                0
            )
            .is_ok()
        );
    }
}
