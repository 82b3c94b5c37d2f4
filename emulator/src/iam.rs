//! Who may sign requests and what each caller may read.
//!
//! Resources are named `<product>:<type>/<name>` (`kms:secret/app/db`,
//! `oos:parameter/db/password`); a principal holds allow patterns where `*`
//! matches any run of characters. Access keys from the seed are the only
//! principals today; STS-issued identities (roles) would be added to
//! [`Identities`] as further [`Credential`]s with their own [`Principal`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use time::OffsetDateTime;

use crate::seed::AccessKey;

/// What a principal may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Permissions {
    allow: Vec<String>,
}

impl Permissions {
    pub fn allowing(patterns: Vec<String>) -> Self {
        Permissions { allow: patterns }
    }

    pub fn allows(&self, resource: &str) -> bool {
        self.allow.iter().any(|p| glob_match(p, resource))
    }
}

/// The identity a verified request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// For logs, e.g. `access-key/testid`.
    pub name: String,
    pub permissions: Permissions,
}

/// A signing key and the principal it authenticates.
#[derive(Clone)]
pub(crate) struct Credential {
    pub access_key_id: String,
    pub secret: String,
    pub security_token: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub principal: Arc<Principal>,
}

impl From<&AccessKey> for Credential {
    fn from(key: &AccessKey) -> Self {
        Credential {
            access_key_id: key.id.clone(),
            secret: key.secret.clone(),
            security_token: key.security_token.clone(),
            expires_at: key.expires_at,
            principal: Arc::new(Principal {
                name: format!("access-key/{}", key.id),
                permissions: Permissions::allowing(key.allow.clone()),
            }),
        }
    }
}

/// The credentials the emulator accepts, by AccessKeyId.
#[derive(Default)]
pub(crate) struct Identities {
    keys: RwLock<HashMap<String, Arc<Credential>>>,
}

impl Identities {
    pub fn from_access_keys(keys: &[AccessKey]) -> Self {
        let identities = Identities::default();
        for key in keys {
            identities.insert(Credential::from(key));
        }
        identities
    }

    pub fn get(&self, access_key_id: &str) -> Option<Arc<Credential>> {
        self.keys
            .read()
            .expect("identities lock")
            .get(access_key_id)
            .cloned()
    }

    /// Adds or replaces a credential.
    pub fn insert(&self, credential: Credential) {
        self.keys
            .write()
            .expect("identities lock")
            .insert(credential.access_key_id.clone(), Arc::new(credential));
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of
/// characters (including `/` and nothing) and everything else is literal.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and how much of `text` it has swallowed so far:
    // on a mismatch we let it swallow one more byte and retry.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_ram_resource_patterns() {
        for (pattern, text, want) in [
            ("*", "kms:secret/a", true),
            ("*", "", true),
            ("kms:secret/*", "kms:secret/app/db", true),
            ("kms:secret/*", "oos:parameter/a", false),
            ("kms:secret/test", "kms:secret/test", true),
            ("kms:secret/test", "kms:secret/test2", false),
            ("kms:secret/te*t", "kms:secret/test", true),
            ("kms:secret/te*t", "kms:secret/tesx", false),
            ("*/db/*", "oos:parameter/db/password", true),
            ("*a*b*c", "xxaxxbxxbxc", true),
            ("a**", "a", true),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(glob_match(pattern, text), want, "{pattern:?} vs {text:?}");
        }
    }

    #[test]
    fn permissions_default_to_everything_and_can_be_narrowed() {
        let all = Credential::from(&AccessKey::new("a", "b"));
        assert!(all.principal.permissions.allows("oos:parameter/x"));
        let narrow = Credential::from(&AccessKey::new("a", "b").allowing(["kms:secret/app/*"]));
        assert!(narrow.principal.permissions.allows("kms:secret/app/x"));
        assert!(!narrow.principal.permissions.allows("kms:secret/other"));
        let none = Permissions::allowing(Vec::new());
        assert!(!none.allows("kms:secret/x"));
    }
}
