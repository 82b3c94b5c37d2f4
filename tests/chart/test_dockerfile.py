"""The Dockerfile, checked without a Docker engine: its build stage runs the
documented build commands on the pinned toolchain, and its runtime stage
matches what the chart expects (binary path, user, arguments)."""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field

import pytest

from chart_helpers import BINARY, REPO, chart_values

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

# The build commands, as the README lists them.
BUILD_COMMANDS = [
    "rustup target add wasm32-wasip2",
    "cargo build --release --locked -p csi-secrets-store-provider-alibabacloud",
]

# Debian release of each distroless suffix; the build must link against the
# same glibc as the runtime.
DISTROLESS_DEBIAN = {"debian12": "bookworm", "debian13": "trixie"}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]

    def commands(self) -> list[str]:
        """Shell commands of RUN instructions, flags dropped, split at &&."""
        out = []
        for run in self.all("RUN"):
            words = run.split()
            while words and words[0].startswith("--"):
                words.pop(0)
            for command in " ".join(words).split("&&"):
                out.append(" ".join(command.split()))
        return out


def parse_dockerfile(text: str) -> list[Stage]:
    # Join continuation lines; comment lines inside a continuation are dropped
    # as Docker does.
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            m = re.match(r"^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$", args, re.IGNORECASE)
            assert m, f"cannot parse FROM {args}"
            stages.append(Stage(base=m.group(1), name=m.group(2)))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    import json

    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    return value


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(stages) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def build(stages, runtime) -> Stage:
    sources = {re.search(r"--from=(\S+)", c).group(1) for c in runtime.all("COPY") if "--from=" in c}
    assert len(sources) == 1, f"the runtime stage should copy from one build stage, copies from {sources}"
    (source,) = sources
    (stage,) = [s for s in stages if s.name == source]
    return stage


def test_is_multi_stage(stages):
    assert len(stages) >= 2


def test_build_stage_runs_the_build_commands_in_order(build):
    commands = build.commands()
    positions = []
    for expected in BUILD_COMMANDS:
        assert expected in commands, f"{expected!r} not run by the build stage; it runs {commands}"
        positions.append(commands.index(expected))
    assert positions == sorted(positions), "the wasm target must be added before cargo build"


def test_build_commands_match_the_readme():
    readme = REPO / "README.md"
    if not readme.exists():
        pytest.skip("README.md not written yet")
    listed = [
        " ".join(line.strip().lstrip("$ ").split())
        for line in readme.read_text().splitlines()
        if re.match(r"^\s*\$?\s*(rustup target add|cargo build --release)", line)
    ]
    if not listed:
        pytest.skip("README.md lists no build commands yet")
    for command in BUILD_COMMANDS:
        assert command in listed, f"README.md does not list {command!r}; it lists {listed}"


def test_build_stage_uses_the_pinned_toolchain(build, runtime):
    channel = tomllib.loads((REPO / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    m = re.match(r"^(?:docker\.io/)?(?:library/)?rust:(\d+\.\d+(?:\.\d+)?)-(\w+)$", build.base)
    assert m, f"build stage base {build.base} is not an official rust:<version>-<debian> image"
    version, debian = m.groups()
    assert channel == version or channel.startswith(version + "."), (channel, version)
    assert channel.startswith("1.95"), "the project builds on Rust 1.95"
    suffix = re.search(r"(debian\d+)", runtime.base).group(1)
    assert DISTROLESS_DEBIAN[suffix] == debian, f"build on {debian} but run on {suffix}: glibc differs"


def test_runtime_is_minimal_and_non_root(runtime):
    assert runtime.base.startswith("gcr.io/distroless/cc-"), runtime.base
    assert runtime.all("RUN") == [], "the runtime stage has no shell to RUN with"
    user = runtime.last("USER")
    assert re.fullmatch(r"\d+:\d+", user), f"USER {user} must be numeric uid:gid (runAsNonRoot checks it)"
    uid, gid = map(int, user.split(":"))
    assert uid != 0


def test_runtime_user_matches_the_chart(runtime):
    uid, gid = map(int, runtime.last("USER").split(":"))
    linux = chart_values()["linux"]
    assert (uid, gid) == (linux["runAsUser"], linux["runAsGroup"])


def test_entrypoint_is_the_binary_the_chart_runs(runtime, render):
    entrypoint = exec_form(runtime.last("ENTRYPOINT"))
    cmd = exec_form(runtime.last("CMD"))
    container = render().container
    assert entrypoint == [BINARY] == container["command"]
    assert cmd == ["serve"] == container["args"][:1]
    copies = [c for c in runtime.all("COPY") if "--from=" in c]
    assert any(shlex.split(c)[-1] == BINARY for c in copies), f"no COPY puts the binary at {BINARY}: {copies}"


# The upstream image's entrypoint, which DaemonSets written for it may name.
UPSTREAM_BINARY = "/bin/secrets-store-csi-driver-provider-alibaba-cloud"


def test_upstream_binary_path_links_to_the_binary(build, runtime):
    # The build stage makes the link inside a directory, and the runtime stage
    # copies that directory's contents: COPY keeps links inside a copied
    # directory, but follows a link named as its source.
    links = [
        shlex.split(c) for c in build.commands() if c.startswith("ln -s ")
    ]
    upstream_dir, upstream_name = UPSTREAM_BINARY.rsplit("/", 1)
    found = []
    for copy in runtime.all("COPY"):
        words = shlex.split(copy)
        if "--from=" + build.name not in words:
            continue
        source, dest = words[-2], words[-1]
        for link in links:
            target, path = link[-2], link[-1]
            if source.endswith("/") and path == source + upstream_name and dest.rstrip("/") == upstream_dir:
                found.append((target, path, dest))
    assert found, f"no COPY of a directory holding a link {upstream_name} into {upstream_dir}/: links {links}"
    ((target, path, _),) = found
    assert target == BINARY, f"{UPSTREAM_BINARY} links to {target}, not {BINARY}"
    # The directory is made before the link, in the same build stage.
    commands = build.commands()
    assert f"mkdir -p {path.rsplit('/', 1)[0]}" in commands, commands


def test_binary_name_matches_the_cargo_target(build):
    manifest = tomllib.loads((REPO / "host" / "Cargo.toml").read_text())
    names = [b["name"] for b in manifest.get("bin", [])]
    assert BINARY.rsplit("/", 1)[1] in names
    assert manifest["package"]["name"] == "csi-secrets-store-provider-alibabacloud"
    assert any(f"target/release/{names[0]}" in c for c in build.commands())


def test_health_port_matches_the_chart(runtime):
    assert runtime.last("EXPOSE").split()[0] == str(chart_values()["linux"]["healthzPort"])


# === .dockerignore ===


def ignore_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + "$")


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the context (no `!` patterns used)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(ignore_regex(p).match(prefix) for p in patterns for prefix in prefixes)


def dockerignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line.strip("/") for line in lines if line and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "the checker does not handle ! patterns"
    return patterns


def test_dockerignore_keeps_the_workspace():
    patterns = dockerignore_patterns()
    workspace = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]
    needed = ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml", "config.toml", "host/build.rs"]
    needed += [f"{member}/Cargo.toml" for member in workspace["members"]]
    needed += [str(p.relative_to(REPO)) for d in ("proto", "wit") for p in (REPO / d).rglob("*") if p.is_file()]
    kept_out = [p for p in needed if ignored(p, patterns)]
    assert not kept_out, f".dockerignore leaves out files the build needs: {kept_out}"


def test_dockerignore_drops_outputs_and_tools():
    patterns = dockerignore_patterns()
    for path in ("target/release/x", "host/target/x", ".git/HEAD", ".tools/bin/helm",
                 ".venv-chart/bin/python", "charts/csi-secrets-store-provider-alibabacloud/Chart.yaml"):
        assert ignored(path, patterns), path
