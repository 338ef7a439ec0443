"""The release bundle, as an operator receives it."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

BUNDLE = Path(os.environ["BUNDLE_DIR"])
MANIFEST = json.loads((BUNDLE / "release-manifest.json").read_text())
VERSION = MANIFEST["backend_version"]
IMAGES = ("core", "management", "migrate")
LONG_LIVED = ("core", "management")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("release")


@pytest.fixture(scope="session")
def archives(work) -> dict[str, Path]:
    """Each image archive, decompressed as `docker load` would read it."""
    out = {}
    for image in IMAGES:
        tar = work / f"{image}.tar"
        with gzip.open(BUNDLE / MANIFEST["images"][image]["file"]) as src, tar.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        out[image] = tar
    return out


@pytest.fixture(scope="session")
def rootfs(work, archives) -> dict[str, Path]:
    """Each image unpacked by the OCI tools: skopeo to an OCI layout, umoci to a bundle."""
    out = {}
    layout = work / "oci"
    for image, tar in archives.items():
        subprocess.run(
            ["skopeo", "copy", "-q", f"docker-archive:{tar}", f"oci:{layout}:{image}"], check=True
        )
        bundle = work / f"bundle-{image}"
        subprocess.run(
            ["umoci", "unpack", "--rootless", "--image", f"{layout}:{image}", str(bundle)],
            check=True, capture_output=True,
        )
        out[image] = bundle / "rootfs"
    return out


def test_every_file_is_named_as_the_guide_says_and_checksums_verify():
    expected = {
        f"biometric-passkey-helm-chart-backend-v{VERSION}.tgz",
        *(f"biometric-passkey-{i}-distroless-backend-v{VERSION}.tar.gz" for i in IMAGES),
        "checksums.txt", "release-manifest.json", "release-notes.md", "release-sbom.cdx.json",
    }
    assert {p.name for p in BUNDLE.iterdir()} == expected
    result = subprocess.run(["sha256sum", "-c", "checksums.txt"], cwd=BUNDLE, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = {line.split("  ", 1)[1] for line in (BUNDLE / "checksums.txt").read_text().splitlines()}
    assert listed == expected - {"checksums.txt"}


def test_a_corrupted_file_fails_the_checksums(work):
    copy = work / "corrupted"
    shutil.copytree(BUNDLE, copy)
    notes = copy / "release-notes.md"
    notes.write_text(notes.read_text() + "tampered\n")
    result = subprocess.run(["sha256sum", "-c", "checksums.txt"], cwd=copy, capture_output=True, text=True)
    assert result.returncode != 0 and "release-notes.md: FAILED" in result.stdout


def test_the_manifest_names_versions_digests_and_files_that_match():
    assert MANIFEST["chart"]["version"] == VERSION and MANIFEST["chart"]["app_version"] == VERSION
    assert MANIFEST["chart"]["sha256"] == sha256(BUNDLE / MANIFEST["chart"]["file"])
    assert len(MANIFEST["git_commit"]) == 40
    for image in IMAGES:
        entry = MANIFEST["images"][image]
        assert entry["sha256"] == sha256(BUNDLE / entry["file"])
        assert entry["reference"] == f"biometric-passkey-{image}:{VERSION}"
        assert entry["image_id"].startswith("sha256:") and len(entry["image_id"]) == 71


@pytest.mark.parametrize("image", IMAGES)
def test_image_configuration_read_by_skopeo(archives, image):
    raw = subprocess.run(
        ["skopeo", "inspect", "--config", "--raw", f"docker-archive:{archives[image]}"],
        check=True, capture_output=True,
    ).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == MANIFEST["images"][image]["image_id"]
    config = json.loads(raw)["config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/usr/local/bin/biometric-passkey"]
    assert config["Cmd"] == [image]
    assert config["Labels"]["org.opencontainers.image.version"] == VERSION
    if image in LONG_LIVED:
        assert config["Healthcheck"]["Test"] == ["CMD", "/usr/local/bin/biometric-passkey", "healthcheck"]
        assert "3000/tcp" in config["ExposedPorts"]
        assert "9464/tcp" in config["ExposedPorts"], "the metrics port"
    else:
        assert "Healthcheck" not in config, "the migration job declares no health check"


def start_registry(storage: Path) -> tuple[subprocess.Popen, str]:
    """A registry of our own on loopback (Debian's docker-registry: the
    distribution project's reference registry), plain HTTP, storing under
    `storage`. Returns the process and its host:port."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed; deploy/release/test.sh installs it")
    for _ in range(3):
        port = free_port()
        config = storage.with_suffix(".yml")
        config.write_text(
            yaml.safe_dump({
                "version": 0.1,
                "log": {"level": "error"},
                "storage": {"filesystem": {"rootdirectory": str(storage)}},
                "http": {"addr": f"127.0.0.1:{port}"},
            })
        )
        server = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if get(f"http://127.0.0.1:{port}/v2/") == 200:
                    return server, f"127.0.0.1:{port}"
            except OSError:
                pass
            time.sleep(0.1)
        if server.poll() is None:
            server.terminate()
            pytest.fail(f"the registry on port {port} did not answer /v2/ within 10 s")
        # Another process took the port between our probe and the bind: again.
    pytest.fail("the registry did not start: " + server.communicate()[0].decode())


@pytest.fixture(scope="session")
def registry(work):
    server, address = start_registry(work / "registry")
    try:
        yield address
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work / "registry", ignore_errors=True)


def documented_push_options() -> list[str]:
    """The options of the push command the manifest and the notes give."""
    command = MANIFEST["push"]["command"].split()
    assert command[:2] == ["skopeo", "copy"]
    return command[2 : command.index("docker-archive:<archive,")]


@pytest.fixture(scope="session")
def pushed(work, archives, registry) -> dict[str, dict]:
    """Each archive pushed as the release notes say (decompressed, then
    `skopeo copy` with the documented options), as biometric-passkey-<image>:VERSION.
    For each image: the digest skopeo reports, and the registry's answers."""
    out = {}
    for image, tar in archives.items():
        digest_file = work / f"{image}.pushed-digest"
        subprocess.run(
            ["skopeo", "copy", "-q", *documented_push_options(), "--dest-tls-verify=false",
             "--digestfile", str(digest_file),
             f"docker-archive:{tar}", f"docker://{registry}/biometric-passkey-{image}:{VERSION}"],
            check=True,
        )
        request = urllib.request.Request(
            f"http://{registry}/v2/biometric-passkey-{image}/manifests/{VERSION}",
            headers={"Accept": MANIFEST["push"]["manifest_media_type"]},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
            header = response.headers["Docker-Content-Digest"]
            content_type = response.headers["Content-Type"]
        inspected = json.loads(subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", f"docker://{registry}/biometric-passkey-{image}:{VERSION}"],
            check=True, capture_output=True,
        ).stdout)
        out[image] = {
            "skopeo": digest_file.read_text().strip(),
            "header": header,
            "content_type": content_type,
            "body": body,
            "inspect": inspected["Digest"],
        }
    return out


def test_the_documented_push_command_is_skopeos_defaults_made_explicit():
    """Docker v2 schema 2 keeps the archive's image configuration, so the image
    id survives the push; gzip is what registries and every runtime accept."""
    assert documented_push_options() == ["--format", "v2s2", "--dest-compress-format", "gzip"]
    assert MANIFEST["push"]["manifest_media_type"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert MANIFEST["push"]["skopeo"] == subprocess.run(
        ["skopeo", "--version"], check=True, capture_output=True, text=True
    ).stdout.split()[-1]


@pytest.mark.parametrize("image", IMAGES)
def test_pushing_the_archive_to_a_registry_yields_the_recorded_digest(pushed, registry, image):
    digest = MANIFEST["images"][image]["digest"]
    assert digest.startswith("sha256:") and len(digest) == 71
    answer = pushed[image]
    assert answer["skopeo"] == digest, "skopeo copy reports the recorded digest"
    assert answer["header"] == digest, "the registry's Docker-Content-Digest is the recorded digest"
    assert answer["inspect"] == digest, "skopeo inspect reports the recorded digest"
    assert "sha256:" + hashlib.sha256(answer["body"]).hexdigest() == digest
    assert answer["content_type"] == MANIFEST["push"]["manifest_media_type"]
    manifest = json.loads(answer["body"])
    assert manifest["mediaType"] == MANIFEST["push"]["manifest_media_type"]
    assert manifest["config"]["digest"] == MANIFEST["images"][image]["image_id"], "the image id survives the push"
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }
    # What a chart pinned by digest pulls: repository@digest resolves.
    by_digest = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry}/biometric-passkey-{image}@{digest}"],
        check=True, capture_output=True,
    ).stdout
    assert by_digest == answer["body"]


def test_a_plain_skopeo_push_gets_the_same_digest_and_an_oci_push_another(work, archives):
    """The documented options are what `skopeo copy docker-archive:… docker://…`
    does without them, so an operator who leaves them out pins the same digest.
    A second, empty registry: skopeo reuses blobs it pushed to a registry
    before, and this push must compress the layers itself."""
    server, address = start_registry(work / "registry-plain")
    try:
        def push(*options: str, repository: str) -> tuple[str, dict]:
            digest_file = work / (repository.replace("/", "-") + ".pushed-digest")
            subprocess.run(
                ["skopeo", "copy", "-q", *options, "--dest-tls-verify=false", "--digestfile", str(digest_file),
                 f"docker-archive:{archives['core']}", f"docker://{address}/{repository}:{VERSION}"],
                check=True,
            )
            raw = subprocess.run(
                ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{address}/{repository}:{VERSION}"],
                check=True, capture_output=True,
            ).stdout
            return digest_file.read_text().strip(), json.loads(raw)

        plain, _ = push(repository="plain/biometric-passkey-core")
        assert plain == MANIFEST["images"]["core"]["digest"]
        oci, manifest = push("--format", "oci", repository="oci/biometric-passkey-core")
        assert oci != plain
        assert manifest["config"]["digest"] != MANIFEST["images"]["core"]["image_id"], (
            "an OCI push rewrites the configuration, so the image id changes too"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work / "registry-plain", ignore_errors=True)


@pytest.mark.parametrize("image", IMAGES)
def test_image_contents_unpacked_by_umoci_have_no_shell(rootfs, image):
    root = rootfs[image]
    files = [p for p in root.rglob("*") if p.is_file() or p.is_symlink()]
    names = {p.name for p in files}
    for shell in ("sh", "bash", "dash", "ash", "busybox", "apt", "dpkg"):
        assert shell not in names, f"{shell} found in the {image} image"
    executables = sorted(
        str(p.relative_to(root)) for p in files
        if p.is_file() and not p.is_symlink() and os.access(p, os.X_OK) and ".so" not in p.name
    )
    assert executables == ["usr/local/bin/biometric-passkey"], executables
    assert "nonroot:x:65532:65532" in (root / "etc/passwd").read_text()
    assert (root / "etc/ssl/certs/ca-certificates.crt").stat().st_size > 100_000
    assert (root / "tmp").is_dir()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_core_image_starts_against_postgresql_and_answers_health(rootfs):
    """No container engine runs on the build machine (there is no Docker
    daemon, and crun refuses its hybrid cgroup setup): the root filesystem that
    umoci unpacked is started with chroot, as the image's user, which shows the
    image holds everything its binary needs (libraries, users, certificates)."""
    if os.geteuid() != 0:
        pytest.fail("chroot needs root; run as root (CI does)")
    env = {k: os.environ[k] for k in ("DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_SSLMODE")}
    database = f"release_smoke_{os.getpid()}"
    psql = ["psql", "-h", env["DB_HOST"], "-p", env["DB_PORT"], "-U", env["DB_USER"], "-d", "postgres", "-qc"]
    pg_env = {**os.environ, "PGPASSWORD": env["DB_PASSWORD"]}
    subprocess.run(psql + [f"DROP DATABASE IF EXISTS {database}"], check=True, env=pg_env)
    subprocess.run(psql + [f"CREATE DATABASE {database}"], check=True, env=pg_env)
    env["DB_NAME"] = database

    def chroot(image: str, *args: str) -> list[str]:
        cmd = [shutil.which("chroot") or "/usr/sbin/chroot", "--userspec=65532:65532", str(rootfs[image]), "/usr/local/bin/biometric-passkey", *args]
        return cmd

    migrated = subprocess.run(chroot("migrate", "migrate"), env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    port = free_port()
    metrics_port = free_port()
    core_env = {
        **env,
        "PORT": str(port),
        "BIOMETRIC_PASSKEY_METRICS_PORT": str(metrics_port),
        "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY": "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA",
        "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID": "default",
        "BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE": "synthetic",
        "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID": "biometric-passkey-registration",
        "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID": "biometric-passkey-step-up",
        "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID": "biometric-passkey-recovery-verify",
        "BIOMETRIC_PASSKEY_CORE_API_KEYS": "release-smoke-core-api-key-0123456789abc",
    }
    core = subprocess.Popen(chroot("core", "core"), env=core_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline:
            try:
                status = get(f"http://127.0.0.1:{port}/api/health")
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200
        assert get(f"http://127.0.0.1:{port}/api/ready") == 200, "the database is reachable from the image"
        probe = subprocess.run(chroot("core", "healthcheck", "--port", str(port)), env={}, capture_output=True)
        assert probe.returncode == 0, "the image's HEALTHCHECK command passes"
        # The post-deploy check, run from the image itself, journey included
        # (the provider is synthetic); the key from the runtime's own variable.
        smoke = subprocess.run(
            chroot("core", "smoke", "--core-url", f"http://127.0.0.1:{port}", "--journey", "--json"),
            env={"BIOMETRIC_PASSKEY_CORE_API_KEYS": core_env["BIOMETRIC_PASSKEY_CORE_API_KEYS"]},
            capture_output=True, text=True,
        )
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        verdicts = {c["name"]: c["verdict"] for c in json.loads(smoke.stdout)["checks"]}
        assert verdicts["core.wrong_key_refused"] == "pass"
        assert verdicts["core.journey"] == "pass"
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as scrape:
            assert b'biometric_passkey_http_requests_total{runtime="core",route="/api/ready"' in scrape.read()
    finally:
        core.terminate()
        out, _ = core.communicate(timeout=20)
        subprocess.run(psql + [f"DROP DATABASE IF EXISTS {database}"], env=pg_env)
    assert core.returncode == 0, out.decode()


def test_the_management_image_serves_the_dashboard(rootfs):
    """The release binary embeds the dashboard's build: pages under a strict
    Content-Security-Policy, hashed assets cached for a year."""
    if os.geteuid() != 0:
        pytest.fail("chroot needs root; run as root (CI does)")
    port = free_port()
    env = {
        "PORT": str(port),
        "BIOMETRIC_PASSKEY_METRICS_PORT": str(free_port()),
        # Connects lazily: the dashboard's files need no database.
        "DB_HOST": "127.0.0.1", "DB_PORT": "9", "DB_USER": "nobody", "DB_PASSWORD": "unused", "DB_NAME": "none",
        "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER": "https://login.example.com/",
        "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_AUDIENCE": "biometric-passkey-management-api",
        "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL": "https://login.example.com/jwks",
        "BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID": "biometric-passkey-dashboard",
    }
    cmd = [shutil.which("chroot") or "/usr/sbin/chroot", "--userspec=65532:65532", str(rootfs["management"]),
           "/usr/local/bin/biometric-passkey", "management"]
    management = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        page = None
        while time.monotonic() < deadline:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/users/u-1", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        assert page is not None and page.status == 200
        html = page.read().decode()
        assert '<div id="root"></div>' in html
        assert page.headers["Cache-Control"] == "no-cache"
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "connect-src 'self' https://login.example.com;" in csp
        script = html[html.index("/assets/"):]
        script = script[: script.index('"')]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{script}", timeout=2) as asset:
            assert asset.status == 200
            assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    finally:
        management.terminate()
        out, _ = management.communicate(timeout=20)
    assert management.returncode == 0, out.decode()


def test_the_sbom_is_valid_cyclonedx_from_the_real_dependency_graph():
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = (BUNDLE / "release-sbom.cdx.json").read_text()
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    assert error is None, error
    bom = json.loads(text)
    assert bom["metadata"]["component"]["version"] == VERSION
    components = {c["name"]: c for c in bom["components"]}
    lock = (Path(__file__).resolve().parents[3] / "Cargo.lock").read_text()
    for crate in ("tokio", "axum", "sqlx-postgres", "aes-gcm", "rustls", "jsonwebtoken", "hmac"):
        c = components[crate]
        assert c["purl"] == f"pkg:cargo/{crate}@{c['version']}"
        assert f'name = "{crate}"\nversion = "{c["version"]}"' in lock
        assert c["hashes"][0]["content"] in lock
    for dev_only in ("tempfile", "assert_cmd", "predicates"):
        assert dev_only not in components, f"{dev_only} is not in the binary"
    assert components["libc6"]["purl"].startswith("pkg:deb/debian/libc6@")
    # The OpenSSL the binary links (webauthn-rs-core verifies with it).
    assert components["libssl3"]["purl"].startswith("pkg:deb/debian/libssl3@")
    for crate in ("webauthn-rs-core", "openssl"):
        assert crate in components, f"{crate} is in the binary"
    # Patched in place, and said so.
    patched = components["webauthn-rs-core"]
    assert patched["purl"] == f"pkg:cargo/webauthn-rs-core@{patched['version']}"
    assert patched["pedigree"]["patches"] == [{"type": "unofficial"}]
    refs = {c["bom-ref"] for c in bom["components"]} | {bom["metadata"]["component"]["bom-ref"]}
    for edge in bom["dependencies"]:
        assert edge["ref"] in refs
        assert set(edge["dependsOn"]) <= refs


def test_the_chart_archive_is_the_chart_at_this_version_and_renders():
    import helm_python as helm

    with helm.Chart.load_archive((BUNDLE / MANIFEST["chart"]["file"]).read_bytes()) as chart:
        assert chart.version == VERSION
        assert chart.metadata["appVersion"] == VERSION
        example = Path(__file__).resolve().parents[2] / "helm" / "examples" / "guide-values.yaml"
        values = yaml.safe_load(example.read_text())
        for image in IMAGES:
            values["images"][image]["tag"] = VERSION
        manifests = chart.render(values, name="bp", namespace="bp")
    rendered = "\n".join(manifests.values())
    assert f"registry.example.com/biometric-passkey-core:{VERSION}" in rendered


def test_the_chart_pins_the_images_by_the_manifests_digests():
    import helm_python as helm

    with helm.Chart.load_archive((BUNDLE / MANIFEST["chart"]["file"]).read_bytes()) as chart:
        example = Path(__file__).resolve().parents[2] / "helm" / "examples" / "management-values.yaml"
        values = yaml.safe_load(example.read_text())
        for image in IMAGES:
            values["images"][image]["tag"] = VERSION
            values["images"][image]["digest"] = MANIFEST["images"][image]["digest"]
        manifests = chart.render(values, name="bp", namespace="bp")
    rendered = "\n".join(manifests.values())
    for image in IMAGES:
        reference = f"registry.example.com/biometric-passkey-{image}@{MANIFEST['images'][image]['digest']}"
        assert f'image: "{reference}"' in rendered


def test_release_notes_list_every_file_and_image_id():
    notes = (BUNDLE / "release-notes.md").read_text()
    assert f"v{VERSION}" in notes.splitlines()[0]
    for image in IMAGES:
        assert MANIFEST["images"][image]["image_id"] in notes
        assert MANIFEST["images"][image]["digest"] in notes
        assert MANIFEST["images"][image]["file"] in notes
        push = (
            f"gzip -dc {MANIFEST['images'][image]['file']} >{image}.tar\n"
            f"skopeo copy {' '.join(documented_push_options())} docker-archive:{image}.tar \\\n"
            f"  docker://registry.example.com/biometric-passkey-{image}:{VERSION}\n"
        )
        assert push in notes, "the notes give the push command the digest holds for"


COMPOSE = Path(__file__).resolve().parents[2] / "compose" / "compose.yaml"


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


@pytest.mark.parametrize("service", ["migrate", "core"])
def test_the_compose_file_runs_the_bundles_images_hardened(service):
    spec = compose_services()[service]
    assert spec["image"] == f"biometric-passkey-{service}:${{BIOMETRIC_PASSKEY_VERSION:-0.1.0}}"
    assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"]
    assert spec["user"] == "65532:65532"
    assert "no-new-privileges:true" in spec["security_opt"]


@pytest.mark.parametrize("service", ["migrate", "core"])
def test_the_compose_environment_is_accepted_by_the_images_binary(rootfs, service):
    env = {k: str(v) for k, v in compose_services()[service]["environment"].items()}
    binary = rootfs[service] / "usr/local/bin/biometric-passkey"
    result = subprocess.run([str(binary), "check-config", service], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr


def test_the_compose_core_waits_for_a_successful_migration():
    services = compose_services()
    assert services["core"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
