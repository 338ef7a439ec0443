#!/usr/bin/env python3
"""The Python half of `scripts/release`: after the image archives are written
into OUT, packages the Helm chart, writes the CycloneDX SBOM (from the resolved
Cargo dependency graph of the binary and the Debian packages in the images),
the release manifest (with each image's digest once pushed, computed with
skopeo), the release notes, and checksums.txt over all of them.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "deploy" / "helm" / "biometric-passkey"
IMAGES = ("core", "management", "migrate")
TARGET = "x86_64-unknown-linux-gnu"
# How an operator pushes an image archive so that the registry serves it under
# the digest the manifest records: skopeo writes a Docker v2 schema 2 manifest
# (the archive's own format, so the image configuration and its id are kept)
# over gzip-compressed layers. Both options are what skopeo does without them
# for this source (the release tests push both ways); they are named because
# another format or compression gives another digest.
PUSH_OPTIONS = ("--format", "v2s2", "--dest-compress-format", "gzip")
PUSH_COMMAND = (
    "skopeo copy " + " ".join(PUSH_OPTIONS) + " docker-archive:<archive, decompressed> "
    "docker://<registry>/<repository>:<tag>"
)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def names(version: str) -> dict[str, str]:
    v = f"v{version}"
    files = {"chart": f"biometric-passkey-helm-chart-backend-{v}.tgz"}
    for image in IMAGES:
        files[image] = f"biometric-passkey-{image}-distroless-backend-{v}.tar.gz"
    return files


def package_chart(version: str, out: Path) -> Path:
    import helm_python as helm  # from the chart tests' virtualenv

    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / "biometric-passkey"
        shutil.copytree(CHART_DIR, chart)
        meta = chart / "Chart.yaml"
        text = meta.read_text()
        text = re.sub(r"(?m)^version: .*$", f"version: {version}", text)
        text = re.sub(r'(?m)^appVersion: .*$', f'appVersion: "{version}"', text)
        meta.write_text(text)
        with helm.Chart.load(chart) as loaded:
            saved = Path(loaded.save(tmp))
        target = out / names(version)["chart"]
        shutil.move(saved, target)
    return target


def inspect_image(path: Path) -> dict:
    """What `docker load` will see: the tag, image id (config digest), config."""
    with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r:") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))[0]
        config_bytes = tar.extractfile(manifest["Config"]).read()
    config = json.loads(config_bytes)
    c = config["config"]
    return {
        # As `docker load` prints it.
        "reference": manifest["RepoTags"][0].removeprefix("docker.io/library/"),
        "image_id": "sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        "layers": config["rootfs"]["diff_ids"],
        "user": c.get("User"),
        "entrypoint": c.get("Entrypoint"),
        "cmd": c.get("Cmd"),
        "healthcheck": c.get("Healthcheck", {}).get("Test"),
    }


def skopeo_version() -> str:
    out = subprocess.run(["skopeo", "--version"], capture_output=True, text=True, check=True).stdout
    return out.split()[-1]


def registry_digest(path: Path) -> tuple[str, str]:
    """The digest a registry serves for the image once the archive is pushed
    with PUSH_COMMAND, and that manifest's media type. skopeo makes the same
    manifest whatever the destination: copied with PUSH_OPTIONS into a `dir:`
    (layers compressed, as a registry push compresses them), it writes the
    exact bytes it would upload, and a registry names a manifest by the SHA-256
    of those bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        tar = Path(tmp) / "image.tar"
        # skopeo reads docker-archive:s uncompressed only.
        with gzip.open(path, "rb") as src, tar.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        pushed = Path(tmp) / "pushed"
        subprocess.run(
            ["skopeo", "copy", "-q", *PUSH_OPTIONS, "--dest-compress", f"docker-archive:{tar}", f"dir:{pushed}"],
            check=True,
        )
        manifest = (pushed / "manifest.json").read_bytes()
    return "sha256:" + hashlib.sha256(manifest).hexdigest(), json.loads(manifest)["mediaType"]


def describe_image(path: Path) -> tuple[dict, str]:
    """inspect_image's facts with the digest once pushed after the image id,
    and the pushed manifest's media type."""
    info = inspect_image(path)
    digest, media_type = registry_digest(path)
    ordered = {}
    for key, value in info.items():
        ordered[key] = value
        if key == "image_id":
            ordered["digest"] = digest
    return ordered, media_type


def spdx(expression: str | None) -> str | None:
    if not expression:
        return None
    # Cargo still accepts the old "MIT/Apache-2.0" form; SPDX says OR.
    return re.sub(r"\s*/\s*", " OR ", expression)


def cargo_components() -> tuple[dict, list[dict], list[dict]]:
    metadata = json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", TARGET],
            cwd=ROOT,
        )
    )
    lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
    checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    server = next(p["id"] for p in metadata["packages"] if p["name"] == "server")

    def patched(pkg: dict) -> bool:
        """A crates.io release patched in place (vendor/README.md)."""
        return Path(pkg["manifest_path"]).parent.parent == ROOT / "vendor"

    def ref(pkg: dict) -> str:
        if pkg.get("source") or patched(pkg):
            return f"pkg:cargo/{pkg['name']}@{pkg['version']}"
        return f"biometric-passkey/{pkg['name']}@{pkg['version']}"

    # Everything compiled into the binary: normal dependencies, transitively.
    seen, queue, edges = {server}, [server], {}
    while queue:
        node = nodes[queue.pop()]
        deps = [
            d["pkg"] for d in node["deps"] if any(k["kind"] is None for k in d["dep_kinds"])
        ]
        edges[node["id"]] = deps
        for dep in deps:
            if dep not in seen:
                seen.add(dep)
                queue.append(dep)
    components = []
    for pid in sorted(seen - {server}, key=lambda i: (packages[i]["name"], packages[i]["version"])):
        pkg = packages[pid]
        component = {
            "type": "library",
            "bom-ref": ref(pkg),
            "name": pkg["name"],
            "version": pkg["version"],
        }
        if pkg.get("description"):
            component["description"] = " ".join(pkg["description"].split())
        if pkg.get("source"):
            component["purl"] = ref(pkg)
            checksum = checksums.get((pkg["name"], pkg["version"]))
            if checksum:
                component["hashes"] = [{"alg": "SHA-256", "content": checksum}]
        elif patched(pkg):
            component["purl"] = ref(pkg)
            component["pedigree"] = {
                "patches": [{"type": "unofficial"}],
                "notes": f"patched in place: vendor/{pkg['name']}.patch, vendor/README.md",
            }
        else:
            component["group"] = "biometric-passkey"
        if spdx(pkg.get("license")):
            component["licenses"] = [{"expression": spdx(pkg["license"])}]
        if pkg.get("repository"):
            component["externalReferences"] = [{"type": "vcs", "url": pkg["repository"]}]
        components.append(component)
    dependencies = [
        {"ref": ref(packages[pid]), "dependsOn": sorted({ref(packages[d]) for d in deps})}
        for pid, deps in sorted(edges.items(), key=lambda kv: ref(packages[kv[0]]))
    ]
    return packages[server], components, dependencies


def debian_components(tsv: Path) -> list[dict]:
    out = []
    for line in tsv.read_text().splitlines():
        name, version, arch = line.split("\t")[:3]
        purl = f"pkg:deb/debian/{name}@{version}?arch={arch}&distro=debian-12"
        component = {
            "type": "library",
            "bom-ref": purl,
            "name": name,
            "version": version,
            "purl": purl,
            "description": "From Debian 12; in every runtime image"
            + (" (CA certificates only)" if name == "ca-certificates" else ""),
        }
        out.append(component)
    return out


def sbom(version: str, revision: str, created: str, debian: Path, images: dict) -> dict:
    server, crates, dependencies = cargo_components()
    app_ref = f"biometric-passkey@{version}"
    debs = debian_components(debian)
    image_components = []
    for image, info in images.items():
        image_components.append(
            {
                "type": "container",
                "bom-ref": f"image/{image}@{version}",
                "name": f"biometric-passkey-{image}",
                "version": version,
                "hashes": [{"alg": "SHA-256", "content": info["image_id"].split(":", 1)[1]}],
                # An OCI purl's version is the manifest digest a registry serves.
                "purl": f"pkg:oci/biometric-passkey-{image}@{info['digest'].replace(':', '%3A')}?tag={version}",
                "description": f"{info['reference']} (image id {info['image_id']})",
            }
        )
    root_deps = sorted(c["bom-ref"] for c in crates if c["bom-ref"] in {
        d for e in dependencies if e["ref"].startswith("biometric-passkey/server@") for d in e["dependsOn"]
    })
    dependencies = [d for d in dependencies if not d["ref"].startswith("biometric-passkey/server@")]
    dependencies.insert(0, {"ref": app_ref, "dependsOn": root_deps})
    for c in image_components:
        dependencies.append({"ref": c["bom-ref"], "dependsOn": [app_ref] + [d["bom-ref"] for d in debs]})
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"biometric-passkey/{version}/{revision}")),
        "version": 1,
        "metadata": {
            "timestamp": created,
            "tools": {"components": [{"type": "application", "name": "biometric-passkey scripts/release", "version": version}]},
            "component": {
                "type": "application",
                "bom-ref": app_ref,
                "name": "biometric-passkey",
                "version": version,
                "description": "Self-hosted Biometric Passkey backend (Core API, management runtime, migration job)",
                "licenses": [{"expression": spdx(server.get("license")) or "Apache-2.0"}],
                "properties": [{"name": "git:commit", "value": revision}],
            },
        },
        "components": crates + debs + image_components,
        "dependencies": dependencies,
    }


def notes(
    version: str, revision: str, created: str, files: dict, digests: dict, images: dict, skopeo: str
) -> str:
    log = subprocess.run(
        ["git", "log", "--no-merges", "--format=- %s", "-n", "40"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    rows = "\n".join(f"| `{name}` | `{digests[name]}` |" for name in sorted(digests))
    image_rows = "\n".join(
        f"| {image} | `{info['reference']}` | `{info['image_id']}` | `{info['digest']}` |"
        for image, info in images.items()
    )
    push_example = "\n".join(
        f"gzip -dc {files[image]} >{image}.tar\n"
        f"skopeo copy {' '.join(PUSH_OPTIONS)} docker-archive:{image}.tar \\\n"
        f"  docker://registry.example.com/biometric-passkey-{image}:{version}"
        for image in images
    )
    return f"""# biometric-passkey backend v{version}

Built {created} from commit `{revision}`.

## Contents

| file | SHA-256 |
|---|---|
{rows}

Verify before use: `sha256sum -c checksums.txt`.

## Images

Each archive loads with `gzip -dc <archive> | docker load` and reports the
reference below; retag it for your registry and push (see the deployment guide).
The image id is the digest of the image configuration and stays the same
through `docker load`, `docker tag` and `docker push`.

The digest is the one your registry serves for the image once you push the
archive with skopeo as below; set it as `images.<image>.digest` in the chart's
values to pin the image. It was computed with {skopeo}; another skopeo release
may compress the layers differently, so check after pushing that
`skopeo inspect --format '{{{{.Digest}}}}' docker://<registry>/<repository>:{version}`
prints it. `docker push` compresses the layers itself and writes its own
manifest, so an image pushed that way has another digest (the one `docker push`
prints), with the same image id.

| image | loads as | image id | digest once pushed with skopeo |
|---|---|---|---|
{image_rows}

```sh
{push_example}
```

All three run as UID 65532 with a read-only root filesystem, have no shell, and
take their settings from the environment (docs/configuration.md). The core and
management images declare a health check (`biometric-passkey healthcheck`); the
migrate image is a job and does not.

## Upgrading

Install the chart archive of this bundle with the images of this bundle. The
chart's migration hook applies the schema before new pods start; see
docs/operations.md for upgrade, rollback and backup steps.

## Changes

{log}"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", required=True)
    parser.add_argument("--revision", required=True)
    parser.add_argument("--created", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--debian-packages", required=True, type=Path)
    args = parser.parse_args()
    out: Path = args.out
    files = names(args.version)
    chart = package_chart(args.version, out)
    images, media_types = {}, set()
    for image in IMAGES:
        images[image], media_type = describe_image(out / files[image])
        media_types.add(media_type)
    if len(media_types) != 1:
        raise SystemExit(f"bundle: the images would push as different manifest types: {sorted(media_types)}")
    (media_type,) = media_types
    bom = sbom(args.version, args.revision, args.created, args.debian_packages, images)
    (out / "release-sbom.cdx.json").write_text(json.dumps(bom, indent=2) + "\n")
    push = {"command": PUSH_COMMAND, "skopeo": skopeo_version(), "manifest_media_type": media_type}
    digests = {files[k]: sha256(out / files[k]) for k in files}
    digests["release-sbom.cdx.json"] = sha256(out / "release-sbom.cdx.json")
    manifest = {
        "product": "biometric-passkey",
        "backend_version": args.version,
        "git_commit": args.revision,
        "created": args.created,
        "chart": {
            "file": chart.name,
            "name": "biometric-passkey",
            "version": args.version,
            "app_version": args.version,
            "sha256": digests[chart.name],
        },
        "images": {
            image: {"file": files[image], "sha256": digests[files[image]], **info}
            for image, info in images.items()
        },
        # How `images.*.digest` is reached: the registry serves each image under
        # it once the archive is pushed this way (docs/operations.md).
        "push": push,
        "sbom": {"file": "release-sbom.cdx.json", "format": "CycloneDX 1.5", "sha256": digests["release-sbom.cdx.json"]},
    }
    (out / "release-manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    digests["release-manifest.json"] = sha256(out / "release-manifest.json")
    (out / "release-notes.md").write_text(
        notes(args.version, args.revision, args.created, files, dict(digests), images, f"skopeo {push['skopeo']}")
    )
    digests["release-notes.md"] = sha256(out / "release-notes.md")
    (out / "checksums.txt").write_text(
        "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))
    )


if __name__ == "__main__":
    main()
