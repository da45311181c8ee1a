//! RFC 3161 time stamps, the part CacheOS needs offline: the request a service is sent (`TimeStampReq` over the
//! SHA-256 of a manifest's signed message) and the message imprint found in a returned token, so a token that
//! stamps other data is detected. The service's CMS signature is not checked here (no X.509 stack in the
//! appliance); a verification says so.

/// DER object identifier of SHA-256 (2.16.840.1.101.3.4.2.1), contents only.
const SHA256_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];

/// One DER element: (tag, contents, rest).
fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&len0, mut b) = b.split_first()?;
    let len = if len0 < 0x80 {
        len0 as usize
    } else {
        let n = (len0 & 0x7f) as usize;
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let l = b[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
        b = &b[n..];
        l
    };
    if b.len() < len {
        return None;
    }
    Some((tag, &b[..len], &b[len..]))
}

fn children(mut b: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let (t, c, rest) = element(b)?;
        v.push((t, c));
        b = rest;
    }
    Some(v)
}

/// The SHA-256 message imprint of a time-stamp token (or a bare TSTInfo): the first `SEQUENCE { SEQUENCE { OID
/// sha256 … }, OCTET STRING (32) }` anywhere in it, looking into constructed elements and DER-encoded OCTET
/// STRING contents. `None` when there is none or the DER is malformed.
pub fn message_imprint(der: &[u8]) -> Option<[u8; 32]> {
    fn search(b: &[u8], depth: usize) -> Option<[u8; 32]> {
        if depth > 16 {
            return None;
        }
        for (tag, content) in children(b)? {
            if tag == 0x30 {
                if let Some(kids) = children(content) {
                    if let [(0x30, alg), (0x04, hash)] = kids.as_slice() {
                        let is_sha256 = children(alg)
                            .and_then(|a| a.first().map(|(t, oid)| *t == 0x06 && *oid == SHA256_OID))
                            .unwrap_or(false);
                        if is_sha256 && hash.len() == 32 {
                            return (*hash).try_into().ok();
                        }
                    }
                }
            }
            let constructed = tag & 0x20 != 0;
            if constructed || tag == 0x04 {
                if let Some(h) = search(content, depth + 1) {
                    return Some(h);
                }
            }
        }
        None
    }
    search(der, 0)
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend([0x81, n as u8]);
    } else {
        v.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

/// A DER `TimeStampReq` (version 1, SHA-256 imprint, `certReq` true) for a service.
pub fn request_der(digest: &[u8; 32]) -> Vec<u8> {
    let alg = tlv(0x30, &[tlv(0x06, SHA256_OID), vec![0x05, 0x00]].concat());
    let imprint = tlv(0x30, &[alg, tlv(0x04, digest)].concat());
    tlv(0x30, &[tlv(0x02, &[1]), imprint, tlv(0x01, &[0xff])].concat())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A token shaped like a CMS SignedData whose eContent is a TSTInfo stamping `digest`.
    pub(crate) fn token_with_imprint(digest: &[u8; 32]) -> Vec<u8> {
        let alg = tlv(0x30, &[tlv(0x06, SHA256_OID), vec![0x05, 0x00]].concat());
        let imprint = tlv(0x30, &[alg, tlv(0x04, digest)].concat());
        let tst = tlv(
            0x30,
            &[
                tlv(0x02, &[1]),
                tlv(0x06, &[0x2a, 0x03, 0x04]),
                imprint,
                tlv(0x02, &[0x42]),
                tlv(0x18, b"20261202134834Z"),
            ]
            .concat(),
        );
        let econtent = tlv(0xa0, &tlv(0x04, &tst));
        let encap = tlv(
            0x30,
            &[
                tlv(
                    0x06,
                    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04],
                ),
                econtent,
            ]
            .concat(),
        );
        let signed = tlv(0x30, &[tlv(0x02, &[3]), tlv(0x31, &[]), encap].concat());
        tlv(
            0x30,
            &[
                tlv(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]),
                tlv(0xa0, &signed),
            ]
            .concat(),
        )
    }

    #[test]
    fn the_imprint_is_found_in_a_token_and_the_request() {
        let d = [9u8; 32];
        assert_eq!(message_imprint(&token_with_imprint(&d)), Some(d));
        assert_eq!(message_imprint(&request_der(&d)), Some(d));
        assert_eq!(message_imprint(&[0x30, 0x05, 0x02]), None);
        assert_eq!(message_imprint(b""), None);
    }
}
