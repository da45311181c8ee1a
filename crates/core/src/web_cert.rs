//! `web.cert` (issue 19): the web port's TLS certificate as clients see it, so a person can compare the SHA-256
//! fingerprint a browser shows with the one on the console banner or from `cacheosctl web cert`.

use serde::Serialize;
use utoipa::ToSchema;

use crate::executor::{Core, Output};
use crate::CoreError;

/// The web port's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebCert {
    /// SHA-256 of the DER certificate, as upper-case hexadecimal pairs separated by colons (as browsers show it).
    pub fingerprint_sha256: String,
    /// Where the certificate is kept (PEM; replace it and `key.pem` beside it with your own and restart).
    pub path: String,
    /// Whether plain HTTP from clients beyond loopback is redirected to HTTPS.
    pub redirects_plain_http: bool,
}

impl Core {
    /// Tells the core the web port's certificate (set once by the daemon when TLS is on).
    pub fn set_web_cert(&self, cert: WebCert) {
        let _ = self.web_cert_slot().set(cert);
    }

    pub(crate) fn run_web_cert(&self) -> Result<Output, CoreError> {
        match self.web_cert_slot().get() {
            Some(c) => Ok(Output::WebCert(c.clone())),
            None => Err(CoreError::FailedPrecondition(
                "the web port has no TLS certificate (TLS is off or the web port is disabled)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Caller, Frontend, Principal};
    use crate::operation::Operation;
    use crate::store::Store;

    #[test]
    fn web_cert_is_refused_until_set_then_returned_to_anyone_and_audited() {
        let (core, store) = crate::testing::core();
        let nobody = Caller::new(Frontend::Rest, Principal::Uid { uid: 4242 });
        let e = core.execute(&nobody, Operation::WebCert).unwrap_err();
        assert!(e.to_string().contains("no TLS certificate"), "{e}");
        let cert = WebCert {
            fingerprint_sha256: "AB:CD".into(),
            path: "/var/lib/cacheos/tls/cert.pem".into(),
            redirects_plain_http: true,
        };
        core.set_web_cert(cert.clone());
        assert_eq!(
            core.execute(&nobody, Operation::WebCert).unwrap(),
            Output::WebCert(cert)
        );
        let recs = store.query_audit(&Default::default()).unwrap();
        assert_eq!(recs.len(), 2);
        assert!(recs.iter().all(|r| r.record.operation == "web.cert"));
    }
}
