//! `tokens::token_for_audience` on kubelet's service-account tokens JSON.
//!
//! Input: `audience \n tokens JSON`; `now` is taken from a table by the
//! audience's length.
//!
//! Invariants: no panic (also for extreme `exp` and `now`); an accepted
//! token is non-empty, unexpired and issued for the audience; an error never
//! contains a token: every token in the JSON is rewritten with a marker
//! prefix (its claims unchanged) and the error of the rewritten input must
//! not contain the rewritten token.
#![no_main]

use contract::tokens;
use libfuzzer_sys::fuzz_target;

const NOW: &[i64] = &[0, 1_700_000_000, -1, i64::MAX, i64::MIN, 4_102_444_800];
const MARK: &str = "ToKeN-MaRk-";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (audience, json) = text
        .split_once('\n')
        .unwrap_or((tokens::STS_AUDIENCE, &text));
    let now = NOW[audience.len() % NOW.len()];
    match tokens::token_for_audience(json, audience, now) {
        Ok(token) => {
            assert!(!token.token.0.is_empty());
            assert!(token.expires.is_none_or(|exp| exp > now));
            assert!(
                !format!("{token:?}").contains(&token.token.0),
                "the token in Debug"
            );
        }
        Err(_) => {}
    }

    // The same input with every token marked (claims unchanged: the marker
    // goes before the JWT header, whose content is never read).
    if audience.contains(MARK) {
        return;
    }
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(json) else {
        return;
    };
    if map.keys().any(|k| k.contains(MARK)) {
        return;
    }
    let mut marked = Vec::new();
    for entry in map.values_mut() {
        if let Some(serde_json::Value::String(token)) = entry.get_mut("token") {
            *token = format!("{MARK}{token}");
            marked.push(token.clone());
        }
    }
    let json = serde_json::Value::Object(map).to_string();
    if let Err(e) = tokens::token_for_audience(&json, audience, now) {
        for token in &marked {
            assert!(
                !e.0.contains(token.as_str()),
                "the token in an error: {}",
                e.0
            );
        }
    }
});
