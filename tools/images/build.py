"""Build, without Docker, the container images greenloop's real-node tests run.

    tools/images/build            # build what changed; print the manifest path
    tools/images/build --list     # name, content key and OCI archive of each image

Images (all imported by tools/cluster/node.py with `ctr images import`):

    localhost/greenloop-pause:<kube>     the pod sandbox: pause.c from tools/node/build
    localhost/greenloop:dev              the repository's Dockerfile (greenloop CLI, non-root)
    localhost/greenloop-demo-app:dev     examples/demo/app's server
    localhost/greenloop-demo-suites:dev  the demo's pytest suites + greenloop's pytest plugin
    localhost/greenloop-fake-runners:dev test-only: a fake go and mvn, a Maven-shaped tree

How: `debootstrap --variant=minbase` makes a Debian rootfs with python3 once; buildah
(Debian's, storage driver vfs, isolation chroot, never pulling) commits it as
localhost/greenloop-base:bookworm, then builds each Dockerfile FROM it (RUN steps run
for real) and pushes an OCI-layout tar. Python dependencies are resolved on the host
with pip (which knows this machine's package index and certificates) into a wheel
folder inside the build context, so the image builds contact nothing.

Content-addressed: each image's key hashes its Dockerfile, its build context and the
key of what it is built FROM; an archive whose key is unchanged is not rebuilt. Output
and buildah's storage live in ${GREENLOOP_CACHE:-~/.cache/greenloop}/images/.
Standard library only; runs as root (debootstrap and buildah need it here).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tools" / "images"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
BASE_IMAGE = f"localhost/greenloop-base:{SUITE}"
DEBIAN_MIRROR = os.environ.get("GREENLOOP_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Wheels every image build may need beyond the project's own dependencies: the build
# backend pyproject names (pip builds /src in an isolated environment) and the test runner.
EXTRA_WHEELS = ("setuptools>=77", "wheel", "pytest>=8")


class BuildError(RuntimeError):
    """An image could not be built; the message says what to do."""


#: How long an archive no build of this checkout wants is kept for other checkouts.
ARCHIVE_KEEP_SECONDS = 24 * 3600


def log(msg: str) -> None:
    print(f"[images/build] {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    if os.environ.get("GREENLOOP_CACHE"):
        return Path(os.environ["GREENLOOP_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "greenloop"


def images_dir() -> Path:
    return cache_root() / "images"


def kube_version() -> str:
    for line in (ROOT / "tools" / "controlplane" / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "k8s.io/kubernetes" and "=>" not in parts:
            return parts[1]
    raise BuildError("k8s.io/kubernetes is not pinned in tools/controlplane/go.mod")


def node_bin() -> Path:
    out = subprocess.run(
        [str(ROOT / "tools" / "node" / "build"), "--print-dir"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip()) / "bin"


def run(cmd: Sequence[str], *, what: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise BuildError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout


# --------------------------------------------------------------------------------------
# hashing


def tree_files(root: Path, entries: Iterable[str]) -> list[Path]:
    """Files under `root` named by `entries` (files or folders), sorted, minus caches."""
    found: list[Path] = []
    for entry in entries:
        path = root / entry
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            for p in path.rglob("*"):
                rel = p.relative_to(root).parts
                if p.is_file() and not any(
                    x == "__pycache__" or x.endswith(".egg-info") or x == ".state" for x in rel
                ):
                    found.append(p)
        else:
            raise BuildError(f"build input {path} is missing")
    return sorted(set(found))


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def files_digest(root: Path, files: Iterable[Path]) -> str:
    parts: list[str | bytes] = []
    for f in files:
        parts += [str(f.relative_to(root)), f.read_bytes(), oct(f.stat().st_mode & 0o777)]
    return digest(*parts)


# --------------------------------------------------------------------------------------
# OCI layout (for the pause image, made without buildah: one static binary)


def _blob(layout: tarfile.TarFile, data: bytes) -> tuple[str, int]:
    sha = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{sha}")
    info.size = len(data)
    info.mtime = 0
    layout.addfile(info, io.BytesIO(data))
    return f"sha256:{sha}", len(data)


def write_oci_archive(
    out: Path, ref: str, files: dict[str, tuple[bytes, int]], entrypoint: list[str]
) -> None:
    """An OCI image-layout tar with one layer holding `files` (path -> (data, mode))."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            layer.addfile(info, io.BytesIO(data))
    raw = layer_buf.getvalue()
    gz = gzip.compress(raw, mtime=0)
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as layout:
        layer_digest, layer_size = _blob(layout, gz)
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entrypoint},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
        }
        config_digest, config_size = _blob(layout, json.dumps(config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": layer_size,
                }
            ],
        }
        manifest_digest, manifest_size = _blob(layout, json.dumps(manifest).encode())
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "annotations": {"org.opencontainers.image.ref.name": ref},
                }
            ],
        }
        for name, data in (
            ("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
            ("index.json", json.dumps(index).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            layout.addfile(info, io.BytesIO(data))
    tmp.replace(out)


# --------------------------------------------------------------------------------------
# buildah


@dataclass
class Buildah:
    root: Path
    runroot: Path

    def __post_init__(self) -> None:
        self.exe = shutil.which("buildah")
        if not self.exe:
            raise BuildError("buildah is not installed: run tools/node/build (it apt-gets it)")

    def __call__(self, *args: str, what: str) -> str:
        return run(
            [
                self.exe or "buildah",
                f"--root={self.root}",
                f"--runroot={self.runroot}",
                "--storage-driver=vfs",
                *args,
            ],
            what=what,
            # Debian's buildah reads /etc/containers; keep any user registries.conf out.
            env={"BUILDAH_ISOLATION": "chroot", "STORAGE_DRIVER": "vfs"},
        )

    def image_label(self, image: str, label: str) -> str | None:
        """A label of an image in buildah's storage; None when absent (or no image)."""
        proc = subprocess.run(
            [
                self.exe or "buildah",
                f"--root={self.root}",
                f"--runroot={self.runroot}",
                "--storage-driver=vfs",
                "inspect",
                "--type=image",
                image,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            return None
        config = (json.loads(proc.stdout).get("OCIv1") or {}).get("config") or {}
        value = (config.get("Labels") or {}).get(label)
        return str(value) if value is not None else None

    def prune(self) -> None:
        """Drop untagged images (vfs keeps a full copy of each)."""
        subprocess.run(
            [
                self.exe or "buildah",
                f"--root={self.root}",
                f"--runroot={self.runroot}",
                "--storage-driver=vfs",
                "rmi",
                "--prune",
            ],
            capture_output=True,
            check=False,
        )


# --------------------------------------------------------------------------------------
# the images


@dataclass
class Image:
    name: str  # full reference, e.g. localhost/greenloop:dev
    key: str
    archive: Path
    built: bool = False
    seconds: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)


def ensure_rootfs(cache: Path) -> tuple[Path, str]:
    """A Debian minbase rootfs with python3 (debootstrap), cached by its recipe."""
    key = digest(SUITE, "minbase", ",".join(BASE_PACKAGES))[:16]
    dest = cache / "rootfs" / key
    if (dest / ".complete").exists():
        return dest, key
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not os.access(debootstrap, os.X_OK):
        raise BuildError("debootstrap is not installed: run tools/node/build (it apt-gets it)")
    if os.geteuid() != 0:
        raise BuildError("debootstrap needs root; run tools/images/build as root")
    log(f"debootstrap --variant=minbase {SUITE} with {', '.join(BASE_PACKAGES)} (~2 min) ...")
    t0 = time.monotonic()
    tmp = cache / "rootfs" / f".{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    run(
        [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            str(tmp),
            DEBIAN_MIRROR,
        ],
        what="debootstrap (is the Debian mirror reachable? GREENLOOP_DEBIAN_MIRROR overrides it)",
    )
    # Smaller image: package caches and docs are no use in a test image.
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        shutil.rmtree(tmp / junk, ignore_errors=True)
        (tmp / junk).mkdir(parents=True, exist_ok=True)
    (tmp / ".complete").write_text(f"{time.monotonic() - t0:.0f}s\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    log(f"rootfs ready in {time.monotonic() - t0:.0f}s: {dest}")
    return dest, key


def ensure_base(buildah: Buildah, rootfs: Path, rootfs_key: str) -> str:
    """localhost/greenloop-base:<suite> in buildah's storage, committed from the rootfs."""
    key = digest("base", rootfs_key)[:16]
    if buildah.image_label(BASE_IMAGE, "dev.greenloop.key") == key:
        return key
    log(f"committing {BASE_IMAGE} from {rootfs} ...")
    ctr = buildah("from", "--pull=never", "scratch", what="buildah from scratch").strip()
    try:
        mnt = Path(buildah("mount", ctr, what="buildah mount").strip())
        run(["cp", "-a", f"{rootfs}/.", str(mnt)], what="copying the rootfs into the image")
        (mnt / ".complete").unlink(missing_ok=True)
        buildah(
            "config",
            f"--label=dev.greenloop.key={key}",
            "--env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--env=LANG=C.UTF-8",
            "--cmd=/bin/bash",
            ctr,
            what="buildah config",
        )
        buildah("commit", "--rm", ctr, BASE_IMAGE, what="buildah commit")
        buildah.prune()
    except BaseException:
        subprocess.run(
            [buildah.exe or "buildah", f"--root={buildah.root}", "rm", ctr], capture_output=True
        )
        raise
    return key


def make_wheels(dest: Path, project: Path) -> None:
    """Wheels for the project's dependencies (+ build backend, pytest) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "wheel", "--quiet", "--wheel-dir", str(dest), str(project)], what="pip wheel")
    run(
        [*pip, "download", "--quiet", "--only-binary=:all:", "--dest", str(dest), *EXTRA_WHEELS],
        what="pip download",
    )
    # the project's own wheel is rebuilt from /src inside the image
    for whl in dest.glob("greenloop-*.whl"):
        whl.unlink()


def build_dockerfile(
    buildah: Buildah,
    image: Image,
    *,
    dockerfile: Path,
    context: Path,
    build_args: dict[str, str],
) -> None:
    log(f"buildah bud {image.name} ({dockerfile.relative_to(ROOT)}) ...")
    t0 = time.monotonic()
    args = [f"--build-arg={k}={v}" for k, v in build_args.items()]
    buildah(
        "bud",
        "--pull=never",
        "--isolation=chroot",
        "--layers=false",
        f"--label=dev.greenloop.key={image.key}",
        "--format=oci",
        *args,
        "-f",
        str(dockerfile),
        "-t",
        image.name,
        str(context),
        what=f"buildah bud {image.name}",
    )
    tmp = image.archive.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    buildah(
        "push", image.name, f"oci-archive:{tmp}:{image.name}", what=f"buildah push {image.name}"
    )
    tmp.replace(image.archive)
    image.built = True
    image.seconds = time.monotonic() - t0
    log(f"{image.name} built in {image.seconds:.0f}s -> {image.archive}")


def stage_context(dest: Path, entries: Iterable[str]) -> None:
    for f in tree_files(ROOT, entries):
        target = dest / f.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)


PROJECT_FILES = ("pyproject.toml", "README.md", "operator")
DEMO_APP_FILES = ("examples/demo/app/server.py", "examples/demo/app/ctl.py")
DEMO_SUITE_FILES = ("examples/demo/tests", "examples/demo/pytest.ini")
# Images built FROM the Debian base alone, from a few files: (name, reference, files).
# Their keys do not depend on greenloop's sources, so a change there rebuilds neither.
ON_BASE = (
    ("demo-app", "localhost/greenloop-demo-app:dev", DEMO_APP_FILES),
    ("fake-runners", "localhost/greenloop-fake-runners:dev", ("tools/images/fake-runners",)),
)


def build_all(*, force: bool = False) -> dict[str, Image]:
    cache = images_dir()
    archives = cache / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    images: dict[str, Image] = {}

    # pause: the static binary tools/node/build compiled
    kv = kube_version()
    pause_bin = node_bin() / "pause"
    if not pause_bin.exists():
        raise BuildError(f"{pause_bin} is missing: run tools/node/build first")
    pause_data = pause_bin.read_bytes()
    pause = Image(f"localhost/greenloop-pause:{kv}", digest("pause", pause_data)[:16], Path())
    pause.archive = archives / f"pause-{pause.key}.tar"
    if force or not pause.archive.exists():
        write_oci_archive(pause.archive, pause.name, {"pause": (pause_data, 0o755)}, ["/pause"])
        pause.built = True
    images["pause"] = pause

    rootfs, rootfs_key = ensure_rootfs(cache)
    buildah = Buildah(
        cache / "buildah" / "storage", Path(tempfile.gettempdir()) / "greenloop-buildah"
    )
    base_key = ensure_base(buildah, rootfs, rootfs_key)

    project = files_digest(ROOT, tree_files(ROOT, PROJECT_FILES))
    dockerfile = ROOT / "Dockerfile"
    gl = Image(
        "localhost/greenloop:dev",
        digest("greenloop", base_key, dockerfile.read_bytes(), project)[:16],
        Path(),
    )
    on_base = {
        name: Image(
            ref,
            digest(
                name,
                base_key,
                (HERE / f"{name}.Dockerfile").read_bytes(),
                files_digest(ROOT, tree_files(ROOT, files)),
            )[:16],
            Path(),
        )
        for name, ref, files in ON_BASE
    }
    suites_df = HERE / "demo-suites.Dockerfile"
    suites = Image(
        "localhost/greenloop-demo-suites:dev",
        digest(
            "demo-suites",
            gl.key,
            suites_df.read_bytes(),
            files_digest(ROOT, tree_files(ROOT, DEMO_SUITE_FILES)),
        )[:16],
        Path(),
    )
    for name, img in (("greenloop", gl), *on_base.items(), ("demo-suites", suites)):
        img.archive = archives / f"{name}-{img.key}.tar"
        images[name] = img

    todo = [i for n, i in images.items() if n != "pause" and (force or not i.archive.exists())]
    if todo:
        with tempfile.TemporaryDirectory(prefix="greenloop-images-") as tmp:
            ctx = Path(tmp)
            # greenloop's image is needed in buildah's storage for the suites image FROM it
            if (
                suites in todo
                and gl not in todo
                and buildah.image_label(gl.name, "dev.greenloop.key") != gl.key
            ):
                todo.insert(0, gl)
            if gl in todo:
                gl_ctx = ctx / "greenloop"
                stage_context(gl_ctx, PROJECT_FILES)
                make_wheels(gl_ctx / ".wheels", gl_ctx)
                shutil.copy2(ROOT / ".dockerignore", gl_ctx / ".dockerignore")
                build_dockerfile(
                    buildah,
                    gl,
                    dockerfile=dockerfile,
                    context=gl_ctx,
                    build_args={"BASE": BASE_IMAGE, "WHEELS": "/src/.wheels"},
                )
            for name, _, files in ON_BASE:
                if on_base[name] in todo:
                    stage_context(ctx / name, files)
                    build_dockerfile(
                        buildah,
                        on_base[name],
                        dockerfile=HERE / f"{name}.Dockerfile",
                        context=ctx / name,
                        build_args={"BASE": BASE_IMAGE},
                    )
            if suites in todo:
                suites_ctx = ctx / "demo-suites"
                stage_context(suites_ctx, DEMO_SUITE_FILES)
                wheels = suites_ctx / ".wheels"
                wheels.mkdir(parents=True)
                pip = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
                run([*pip, "--dest", str(wheels), "pytest>=8"], what="pip download pytest")
                build_dockerfile(
                    buildah,
                    suites,
                    dockerfile=suites_df,
                    context=suites_ctx,
                    build_args={"BASE": gl.name, "WHEELS": "/src/.wheels"},
                )
        buildah.prune()
        # Keep the current archive of each image, and any another checkout built within a
        # day: checkouts (worktrees, parallel sessions) share this cache, and deleting
        # theirs pulled the images from under a node another session was starting.
        current = {img.archive for img in images.values()}
        stale = time.time() - ARCHIVE_KEEP_SECONDS
        for old in archives.glob("*.tar"):
            if old not in current and old.stat().st_mtime < stale:
                old.unlink(missing_ok=True)

    manifest = {
        name: {"image": img.name, "key": img.key, "archive": str(img.archive)}
        for name, img in images.items()
    }
    (cache / "images.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return images


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/images/build", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--force", action="store_true", help="rebuild every image")
    parser.add_argument("--list", action="store_true", help="print name, key and archive")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    try:
        images = build_all(force=args.force)
    except BuildError as exc:
        log(f"ERROR: {exc}")
        return 1
    built = [i.name for i in images.values() if i.built]
    log(
        f"{'built ' + ', '.join(built) if built else 'up to date'} "
        f"({time.monotonic() - t0:.0f}s); manifest {images_dir() / 'images.json'}"
    )
    if args.list:
        for img in images.values():
            print(f"{img.name}\t{img.key}\t{img.archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
