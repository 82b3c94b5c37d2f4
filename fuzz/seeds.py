#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/seed-* from the project's own
test inputs: the SecretProviderClass snippets of the e2e and spc tests, the
YAML tests, config.toml and the TOML of the config tests, the jmesPath tests,
the signature test vectors, the net tests' URLs and patterns, and requests
and tokens signed here as the SDKs sign them.

Run from anywhere: `python3 fuzz/seeds.py`. It replaces only files named
seed-*; what the fuzzer adds to a corpus (hash-named) is left alone and is
not committed (see .gitignore).
"""

import base64
import hashlib
import hmac
import json
import pathlib
import re
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"

POD = {
    "csi.storage.k8s.io/pod.name": "app-7d9c",
    "csi.storage.k8s.io/pod.namespace": "team-a",
    "csi.storage.k8s.io/pod.uid": "0b6c-1",
    "csi.storage.k8s.io/serviceAccount.name": "app",
}
SA_TOKENS_KEY = "csi.storage.k8s.io/serviceAccount.tokens"
TARGET = "/var/lib/kubelet/pods/0b6c-1/volumes/kubernetes.io~csi/secrets/mount"


def rust_strings(path):
    """The string literals of a Rust file, unescaped ("..." and r#"..."#)."""
    text = (ROOT / path).read_text()
    out = []
    pattern = re.compile(r'r(#*)"(.*?)"\1|"((?:[^"\\]|\\.)*)"', re.S)
    for m in pattern.finditer(text):
        if m.group(2) is not None:
            out.append(m.group(2))
            continue
        s = m.group(3)
        s = re.sub(r"\\\n\s*", "", s)
        s = re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda u: chr(int(u.group(1), 16)), s)
        s = (
            s.replace("\\n", "\n")
            .replace("\\t", "\t")
            .replace("\\r", "\r")
            .replace("\\0", "\0")
            .replace('\\"', '"')
            .replace("\\'", "'")
            .replace("\\\\", "\\")
        )
        out.append(s)
    return out


def unique(items):
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, key=None):
    header = {"alg": "HS256" if key else "none", "typ": "JWT"}
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = b64url(hmac.new(key.encode(), signing.encode(), hashlib.sha256).digest()) if key else ""
    return signing + "." + sig


def write(target, seeds):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("seed-*"):
        old.unlink()
    seeds = unique(s.encode() if isinstance(s, str) else s for s in seeds)
    for i, seed in enumerate(seeds):
        (directory / f"seed-{i:03d}").write_bytes(seed)
    print(f"{target}: {len(seeds)} seeds, {sum(map(len, seeds))} bytes")


# --- SecretProviderClass objects YAML ---------------------------------------

SPC_SOURCES = [
    "contract/src/spc.rs",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests/tests/e2e").glob("*.rs")),
]
objects_yaml = unique(
    s
    for src in SPC_SOURCES
    for s in rust_strings(src)
    if "objectName" in s and ("- " in s or "[" in s) and len(s) < 4000
)
example = (ROOT / "examples/secretproviderclass.yaml").read_text()
m = re.search(r"objects: \|\n((?:\s{6,}.*\n?)+)", example)
if m:
    lines = m.group(1).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    objects_yaml.append("\n".join(line[indent:] for line in lines) + "\n")

# --- mount_request ----------------------------------------------------------

mount = []
selectors = [b"\x00\x00\x00\x00", b"\x04\x02\x02\x12", b"\x05\x03\x03\x21", b"\x07\x06\x05\x30"]
for i, yaml in enumerate(objects_yaml):
    mount.append(b"\x01" + selectors[i % len(selectors)] + yaml.encode())
    attributes = dict(POD, objects=yaml)
    if i % 3 == 1:
        attributes["pathTranslation"] = "False"
    if i % 4 == 2:
        attributes["region"] = "cn-hangzhou"
        attributes["usePodServiceAccountToken"] = "true"
    secrets = {"username": "u", "password": "p"} if i % 2 else {}
    if i % 5 == 0:
        secrets[SA_TOKENS_KEY] = json.dumps({"sts.aliyuncs.com": {"token": "x.y.z"}})
    mount.append(
        b"\x00"
        + "\0".join([json.dumps(attributes), json.dumps(secrets), "420", TARGET]).encode()
    )
mount.append(b"\x00" + "\0".join([json.dumps(POD), "", "", TARGET]).encode())
mount.append(b"\x00" + "\0".join(["{", "[]", "x", ""]).encode())
# Regression: a repeated namespace key (pod_namespace refused what parse took).
repeated = '{"csi.storage.k8s.io/pod.namespace": "victim", ' + json.dumps(dict(POD, objects="- objectName: a\n"))[1:]
mount.append(b"\x00" + "\0".join([repeated, "{}", "420", TARGET]).encode())
write("mount_request", mount)

# --- yaml -------------------------------------------------------------------

yaml_seeds = list(objects_yaml)
yaml_seeds += [s for s in rust_strings("contract/src/yaml.rs") if "\n" in s or "&" in s]
yaml_seeds += [example]
write("yaml", yaml_seeds)

# --- jmespath ---------------------------------------------------------------

expressions = ["username", "nested.k", "list[1]", '"password"', "missing", "n", ".testpath"]
for yaml in objects_yaml:
    expressions += re.findall(r"path:\s*\"?([^\"\n]+)\"?", yaml)
expressions += [
    s
    for s in rust_strings("contract/src/jmes.rs")
    if 0 < len(s) < 200 and "\n" not in s and " " not in s.strip()
]
documents = [
    '{"username":"testuser","password":"testpassword","n":5,"nested":{"k":"v"},"list":["a","b"]}',
    '{"host":"db.internal","port":"5432","user":"app","pass":"s3cr3t"}',
    "not json {",
    "[1,2,3]",
]
jmes = []
for i, expression in enumerate(unique(expressions)):
    jmes.append(expression + "\0" + documents[i % len(documents)])
jmes.append("join(',', list)\0" + documents[0])
jmes.append("[username, password] | join('-', @)\0" + documents[0])
write("jmespath", jmes)

# --- config_toml ------------------------------------------------------------

toml_seeds = [(ROOT / "config.toml").read_text()]
toml_seeds += [
    s
    for s in rust_strings("contract/src/config.rs")
    if re.search(r"^\s*\[[a-z_.]+\]", s, re.M) or re.search(r"^\s*[a-z_]+ = ", s, re.M)
]
write("config_toml", toml_seeds)

# --- net --------------------------------------------------------------------

net = [s for s in rust_strings("contract/src/net.rs") if 0 < len(s) < 200 and "\n" not in s]
net += re.findall(r'"((?:https?://|\*\.)[^"]+)"', (ROOT / "config.toml").read_text())
net += [
    "https://kms.cn-hangzhou.aliyuncs.com",
    "http://127.0.0.1:8765",
    "https://[::1]:8443",
    "https://vault.internal:8200",
    "*.aliyuncs.com",
    "kms-vpc.cn-hangzhou.aliyuncs.com:443",
    "100.100.100.200",
    "http://[::ffff:100.100.100.200]/",
]
write("net", net)

# --- tokens -----------------------------------------------------------------

sts = "sts.aliyuncs.com"
claims = {"sub": "system:serviceaccount:team-a:app", "aud": [sts], "exp": 2000000000}
tokens = [
    sts + "\n" + json.dumps({sts: {"token": jwt(claims), "expirationTimestamp": "2030-01-01T00:00:00Z"}}),
    sts + "\n" + json.dumps({sts: {"token": jwt(dict(claims, exp=10))}, "vault": {"token": "x"}}),
    sts + "\n" + json.dumps({"vault": {"token": "x"}}),
    sts + "\n" + json.dumps({sts: {"token": jwt({"sub": "s", "aud": "api"})}}),
    sts + "\n" + json.dumps({sts: {"token": "not-a-jwt"}}),
    "vault\n" + json.dumps({"vault": {"token": jwt({"sub": "s", "aud": "vault", "exp": -5})}}),
    sts + "\n[1]",
    # Regression: audience of length 3 gives now = i64::MAX; `now - exp` overflowed.
    "abc\n" + json.dumps({"abc": {"token": jwt({"sub": "s", "aud": "abc", "exp": -1})}}),
]
write("tokens", tokens)

# --- signature --------------------------------------------------------------

sig_src = (ROOT / "signature/src/lib.rs").read_text()
signature = []
for block in re.findall(r"let params = \[(.*?)\];", sig_src, re.S):
    pairs = re.findall(r'\("([^"]*)",\s*"([^"]*)"\)', block)
    lines = ["POST", "testid", "testsecret", "/"] + [f"{k}={v}" for k, v in pairs]
    headers = [
        "host:kms.cn-hangzhou.aliyuncs.com",
        "x-acs-action:GetSecretValue",
        "x-acs-version:2016-01-20",
        "x-acs-date:2023-10-26T10:22:32Z",
        "x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d",
    ]
    signature.append("\n".join(lines + [""] + headers + ["", "SecretName=test"]))
signature.append("GET\nYourAccessKeyId\nYourAccessKeySecret\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd\nRegionId=cn-shanghai\n\nx-acs-action:RunInstances\n\n")
signature.append("ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=host;x-acs-action,Signature=abc")
signature.append("post\na b\n\n/\na b=x y\n*=~\n\nHost: h\n\n")
write("signature", signature)

# --- emulator_request -------------------------------------------------------

KEY_ID, SECRET = "testid", "testsecret"
NOW_TEXT = "2024-01-01T00:00:00Z"


def pe(s):
    return urllib.parse.quote(s, safe="-_.~")


def canonical_query(pairs):
    return "&".join(f"{k}={v}" for k, v in sorted((pe(k), pe(v)) for k, v in pairs))


def v3_request(method, query, body, content_type=None, nonce="n1"):
    headers = {
        "host": "kms.cn-hangzhou.aliyuncs.com",
        "x-acs-action": "GetSecretValue",
        "x-acs-version": "2016-01-20",
        "x-acs-date": NOW_TEXT,
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": hashlib.sha256(body.encode()).hexdigest(),
    }
    names = sorted(headers)
    canonical = "\n".join(
        [method, "/", canonical_query(query), "".join(f"{n}:{headers[n]}\n" for n in names), ";".join(names), headers["x-acs-content-sha256"]]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    sig = hmac.new(SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = f"ACS3-HMAC-SHA256 Credential={KEY_ID},SignedHeaders={';'.join(names)},Signature={sig}"
    if content_type:
        headers["content-type"] = content_type
    uri = "/" + ("?" + urllib.parse.urlencode(query) if query else "")
    return f"{method} {uri}\n" + "".join(f"{k}: {v}\n" for k, v in headers.items()) + "\n" + body


def v1_request(method, params, nonce="n2"):
    params = params + [
        ("AccessKeyId", KEY_ID),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", nonce),
        ("Timestamp", NOW_TEXT),
    ]
    to_sign = f"{method}&%2F&" + pe(canonical_query(params))
    sig = base64.b64encode(hmac.new((SECRET + "&").encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    return f"{method} /?" + urllib.parse.urlencode(params + [("Signature", sig)]) + "\n\n"


emulator = [
    v3_request("POST", [("SecretName", "db"), ("VersionStage", "ACSCurrent")], ""),
    v3_request("POST", [], "SecretName=db+x&Action=GetSecretValue", "application/x-www-form-urlencoded"),
    v3_request("GET", [("a b", "x y"), ("*", "~")], "{}", "application/json", nonce="n3"),
    v1_request("GET", [("Action", "GetSecretValue"), ("SecretName", "db"), ("Version", "2016-01-20")]),
    v1_request("POST", [("Action", "AssumeRole"), ("RoleArn", "acs:ram::1:role/r"), ("RoleSessionName", "s")]),
    "POST /?SecretName=my+secret%2B%2A~&Action=GetSecretValue\ncontent-type: application/x-www-form-urlencoded; charset=utf-8\n\nRecipient=a+b&Action=Ignored",
    "GET http://kms.cn-hangzhou.aliyuncs.com:8080/path?x=1#f\n\n",
    "JWT\n" + jwt({"iss": "https://oidc.example", "sub": "system:serviceaccount:team-a:app", "aud": [sts], "exp": 2000000000, "iat": 1, "kubernetes.io": {"namespace": "team-a"}}, "k") + "\nk",
    "JWT\n" + jwt({"iss": "i", "sub": "s", "aud": "one", "exp": 1}),
    "JWT\n!!.e30.",
]
write("emulator_request", emulator)
