//! Turning quinn's connection errors into errors that say what happened and
//! what to do.

use std::net::SocketAddr;

use crate::Error;

/// TLS alert names for the codes a STOQ handshake can end with.
fn alert_name(alert: u8) -> &'static str {
    match alert {
        0x28 => "handshake_failure",
        0x2a => "bad_certificate",
        0x2b => "unsupported_certificate",
        0x2c => "certificate_revoked",
        0x2d => "certificate_expired",
        0x2e => "certificate_unknown",
        0x30 => "unknown_ca",
        0x31 => "access_denied",
        0x32 => "decode_error",
        0x33 => "decrypt_error",
        0x46 => "protocol_version",
        0x50 => "internal_error",
        0x6d => "missing_extension",
        0x74 => "certificate_required",
        0x78 => "no_application_protocol",
        _ => "unknown alert",
    }
}

/// What a peer's alert most likely means for a STOQ operator.
fn alert_hint(alert: u8) -> &'static str {
    match alert {
        0x28 => "no common key exchange group or signature scheme: post-quantum mode accepts only X25519MLKEM768 and FN-DSA-1024",
        0x74 => "the peer requires a client certificate: configure this node's certificate and key",
        0x30 | 0x2a | 0x2e => "the peer does not trust our certificate: check that both sides use the same trust bundle",
        0x2d => "the peer says our certificate has expired: renew it",
        0x2c => "our certificate has been revoked",
        0x78 => "the peer does not speak STOQ (ALPN stoq/1)",
        _ => "see the peer's logs",
    }
}

/// What our own refusal of a peer most likely means.
fn local_hint(alert: u8) -> &'static str {
    match alert {
        0x30 => "the peer's certificate is not issued by a root in our trust bundle",
        0x2d => "the peer's certificate has expired (or our clock is wrong)",
        0x2a => "the peer's certificate is not valid for the name we dialled, or not for this use",
        0x2c => "the peer's certificate is revoked",
        0x28 => "no common key exchange group or signature scheme with the peer",
        _ => "see the reason above",
    }
}

fn crypto_alert(code: quinn::TransportErrorCode) -> Option<u8> {
    let code = u64::from(code);
    (0x100..0x200).contains(&code).then(|| (code - 0x100) as u8)
}

/// Maps a failed connection attempt or a dropped connection.
pub(crate) fn connection_error(peer: SocketAddr, e: quinn::ConnectionError) -> Error {
    use quinn::ConnectionError as C;
    match e {
        // A transport error with a TLS alert is our own verdict on the peer.
        C::TransportError(te) => match crypto_alert(te.code) {
            Some(alert) => Error::Handshake {
                peer,
                reason: format!(
                    "we refused the peer ({}): {}: {}",
                    alert_name(alert),
                    te.reason,
                    local_hint(alert)
                ),
            },
            None => Error::Connection {
                peer,
                reason: te.to_string(),
                retryable: false,
            },
        },
        C::ConnectionClosed(cc) => match crypto_alert(cc.error_code) {
            Some(alert) => Error::Handshake {
                peer,
                reason: format!(
                    "peer refused the handshake with TLS alert {}: {}",
                    alert_name(alert),
                    alert_hint(alert)
                ),
            },
            None => Error::Connection {
                peer,
                reason: format!("closed by peer: {cc}"),
                retryable: true,
            },
        },
        C::TimedOut => Error::Connection {
            peer,
            reason: "timed out (is the peer up and reachable over IPv6?)".into(),
            retryable: true,
        },
        C::Reset => Error::Connection {
            peer,
            reason: "reset by peer".into(),
            retryable: true,
        },
        C::ApplicationClosed(_) => Error::Connection {
            peer,
            reason: e.to_string(),
            retryable: true,
        },
        other => Error::Connection {
            peer,
            reason: other.to_string(),
            retryable: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_failures_explain_themselves() {
        let peer: SocketAddr = "[::1]:1".parse().unwrap();
        let cc = quinn::ConnectionError::ConnectionClosed(quinn_proto::ConnectionClose {
            error_code: quinn::TransportErrorCode::crypto(0x28),
            frame_type: None,
            reason: Default::default(),
        });
        let msg = connection_error(peer, cc).to_string();
        assert!(
            msg.contains("handshake_failure") && msg.contains("X25519MLKEM768"),
            "{msg}"
        );
        assert!(matches!(
            connection_error(peer, quinn::ConnectionError::TimedOut),
            Error::Connection { retryable: true, .. }
        ));
        // Non-TLS close codes (e.g. CONNECTION_REFUSED = 0x2) are not alerts.
        let refused = quinn::ConnectionError::ConnectionClosed(quinn_proto::ConnectionClose {
            error_code: quinn::TransportErrorCode::CONNECTION_REFUSED,
            frame_type: None,
            reason: Default::default(),
        });
        assert!(matches!(connection_error(peer, refused), Error::Connection { .. }));
    }
}
