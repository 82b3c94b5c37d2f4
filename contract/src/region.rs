//! Alibaba Cloud region ids (`cn-hangzhou`, `ap-southeast-1`,
//! `cn-north-2-gov-1`): one rule for every place a region is accepted —
//! `cloud.region` in config.toml, the SecretProviderClass's `region`, the
//! `--region` flag, `ALIBABA_CLOUD_STS_REGION` and the ECS metadata server's
//! answer.

use std::fmt;

/// The rule, for messages.
pub const REGION_RULE: &str =
    "1 to 64 lowercase letters, digits and '-', starting with a letter and not ending with '-'";

/// A region id that follows [`REGION_RULE`]. It becomes a DNS label of
/// endpoint host names (`kms.<region>.aliyuncs.com`), so nothing else may be
/// in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Region(String);

/// Why a text is not a region id. Shows the text (quoted, at most 64
/// characters) and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{shown} is not a region id ({REGION_RULE}, e.g. \"cn-hangzhou\")")]
pub struct RegionError {
    shown: String,
}

impl RegionError {
    /// The refused text, quoted and shortened.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl Region {
    /// Parses a region id; the text is taken as it is (callers trim).
    pub fn parse(text: &str) -> Result<Region, RegionError> {
        let ok = (1..=64).contains(&text.len())
            && text.starts_with(|c: char| c.is_ascii_lowercase())
            && !text.ends_with('-')
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Region(text.to_string()))
        } else {
            Err(RegionError {
                shown: quoted(text),
            })
        }
    }

    /// The region id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The region id, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// `text` quoted, shortened to 64 characters.
fn quoted(text: &str) -> String {
    let mut shown: String = text.chars().take(64).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for Region {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Region {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Region {
    type Err = RegionError;
    fn from_str(text: &str) -> Result<Region, RegionError> {
        Region::parse(text)
    }
}

impl TryFrom<String> for Region {
    type Error = RegionError;
    fn try_from(text: String) -> Result<Region, RegionError> {
        Region::parse(&text)
    }
}

impl From<Region> for String {
    fn from(region: Region) -> String {
        region.0
    }
}

impl PartialEq<str> for Region {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Region {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<'de> serde::Deserialize<'de> for Region {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Region, D::Error> {
        let text = String::deserialize(d)?;
        Region::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_ids_of_alibaba_cloud_are_accepted() {
        for ok in [
            "cn-hangzhou",
            "ap-southeast-1",
            "us-west-1",
            "cn-north-2-gov-1",
            "cn-hongkong",
            "eu-central-1",
            "a",
            &"a".repeat(64),
        ] {
            let region = Region::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(region.as_str(), ok);
            assert_eq!(region.to_string(), ok);
            assert_eq!(ok.parse::<Region>().unwrap(), region);
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_rule() {
        for bad in [
            "",
            // a leading digit: config.toml and the SecretProviderClass
            // accepted it, the metadata server's answer did not
            "1a",
            "1-cn",
            "-cn",
            // a trailing '-' is no DNS label
            "cn-",
            "CN-hangzhou",
            "cn_hangzhou",
            "cn hangzhou",
            "cn/x",
            "cn-hangzhou.evil.com",
            " cn-hangzhou",
            "cn-hangzhöu",
            &"a".repeat(65),
        ] {
            let e = Region::parse(bad).unwrap_err();
            assert!(e.to_string().contains("is not a region id"), "{bad:?}: {e}");
            assert!(e.to_string().contains(REGION_RULE), "{bad:?}: {e}");
        }
        let e = Region::parse(&"x".repeat(100)).unwrap_err();
        assert_eq!(e.shown(), format!("\"{}…\"", "x".repeat(64)));
    }

    #[test]
    fn serde_reads_a_region_with_the_same_rule() {
        let ok: Region = serde_json::from_str("\"cn-beijing\"").unwrap();
        assert_eq!(ok, "cn-beijing");
        let e = serde_json::from_str::<Region>("\"1a\"").unwrap_err();
        assert!(e.to_string().contains("is not a region id"), "{e}");
        assert_eq!(
            Region::try_from("cn-beijing".to_string()).unwrap(),
            Region::parse("cn-beijing").unwrap()
        );
    }
}
