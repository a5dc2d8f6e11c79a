"""The stack's image: ``ragctl build`` (closed-network aware), ``ragctl wheelhouse`` and
``ragctl bundle save/load`` (moving images to a machine with no registry).

One image serves every service.  A build sends the engine a context made here: the rendered
Dockerfile, the project's source under ``src/``, and ``build/wheels`` (a wheelhouse) and
``build/ca.crt`` (a proxy's CA) — both empty unless asked for, and both left in the build stage.

Builds, saves and loads have no limit on their length, only on the engine's inactivity
(``ragctl.engine.Inactivity``: nothing sent or taken for ``RAGCTL_ENGINE_INACTIVITY_S``, 120 s by
default), and report progress while they run.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ragctl import __version__
from ragctl.deploy import DeployConfig, load_deploy_config
from ragctl.engine import DockerError, Inactivity, engine, inactivity_limit

SOURCE_ROOT = Path(__file__).resolve().parents[1]
SOURCE_ITEMS = ("pyproject.toml", "README.md", "ragctl", "stack", "templates")
BUNDLE_MANIFEST = "ragctl-bundle.json"
#: The image's label (and RAGCTL_BUILD_ID in its environment) that holds its build id (``build_id``).
BUILD_LABEL = "io.ragctl.build"
#: Slack between the inactivity watch and the client's socket timeout (the watch speaks first).
SOCKET_SLACK_S = 5
LOAD_BLOCK_BYTES = 4 << 20
#: docker save may stage the image before its first byte; it is given this rate (20 MB/s) more time.
EXPORT_BYTES_PER_S = 20e6
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

Progress = Callable[[int, int, str], None]  # (step, steps, what)


class ImageError(DockerError):
    code = "image_error"


@dataclass
class BuildOptions:
    """What ``ragctl build`` takes: options given on the command line, else ragctl.toml [stack]."""

    image: str
    base_image: str
    torch_variant: str
    wheelhouse: Path | None = None
    ca_bundle: Path | None = None

    @classmethod
    def for_project(cls, root: Path, *, base_image: str | None = None, torch_variant: str | None = None,
                    wheelhouse: Path | None = None, ca_bundle: Path | None = None) -> BuildOptions:
        config = load_deploy_config(root)

        def path(given: Path | None, configured: str | None) -> Path | None:
            chosen = given if given is not None else (Path(configured) if configured else None)
            return (root / chosen).expanduser().resolve() if chosen is not None else None

        return cls(image=image_name(config), base_image=base_image or config.base_image,
                   torch_variant=torch_variant or config.torch_variant,
                   wheelhouse=path(wheelhouse, config.wheelhouse), ca_bundle=path(ca_bundle, config.ca_bundle))

    def check(self) -> None:
        if self.torch_variant not in ("cpu", "cuda"):
            raise ImageError(f"Unknown torch variant {self.torch_variant!r}.", hint="ragctl build --torch cpu|cuda")
        if self.wheelhouse is not None and not any(self.wheelhouse.glob("*.whl")):
            raise ImageError(f"The wheelhouse {self.wheelhouse} holds no wheels.",
                             hint=f"on a machine with PyPI access: ragctl wheelhouse {self.wheelhouse}")
        if self.ca_bundle is not None and not self.ca_bundle.is_file():
            raise ImageError(f"The CA bundle {self.ca_bundle} does not exist.",
                             hint="pass the proxy's CA file: ragctl build --ca-bundle /path/to/ca.crt")


def image_name(config: DeployConfig) -> str:
    return f"{config.image}:{config.tag}"


def source_root() -> Path:
    """The source tree the image installs: this checkout (an editable or source install)."""
    if not (SOURCE_ROOT / "pyproject.toml").is_file():
        raise ImageError(f"ragctl build needs ragctl's source tree, and {SOURCE_ROOT} has no pyproject.toml "
                         "(ragctl was installed from a wheel).",
                         hint="git clone the ragctl repository and pip install -e '.[stack]' from it")
    return SOURCE_ROOT


def write_build_context(root: Path, options: BuildOptions, out) -> list[str]:
    """Write the build context as a tar to the binary file ``out``; return its member names."""
    dockerfile = root / "Dockerfile"
    if not dockerfile.is_file():
        raise ImageError(f"No Dockerfile in {root}.", hint="ragctl render")
    source = source_root()
    names: list[str] = []

    def skip(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if _left_out(info.name):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        names.append(info.name)
        return info

    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add(dockerfile, arcname="Dockerfile", filter=skip)
        for item in SOURCE_ITEMS:
            tar.add(source / item, arcname=f"src/{item}", filter=skip)
        for folder in ("build", "build/wheels"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        if options.wheelhouse is not None:
            for wheel in sorted(options.wheelhouse.glob("*.whl")):
                tar.add(wheel, arcname=f"build/wheels/{wheel.name}", filter=skip)
        ca = options.ca_bundle.read_bytes() if options.ca_bundle is not None else b""
        info = tarfile.TarInfo("build/ca.crt")
        info.size, info.mode = len(ca), 0o644
        tar.addfile(info, io.BytesIO(ca))
        names.append("build/ca.crt")
    return names


def _left_out(name: str) -> bool:
    """Files the build context leaves out (compiled Python)."""
    return "__pycache__" in Path(name).parts or name.endswith((".pyc", ".pyo"))


def build_id(root: Path, options: BuildOptions, *, base_image_id: str = "", source: Path | None = None) -> str:
    """The build id ``ragctl build`` bakes into the image (``RAGCTL_BUILD_ID``, label ``io.ragctl.build``):
    a SHA-256 over what goes into it — the rendered Dockerfile, every file of the source tree the build
    context carries (path and bytes), the wheelhouse's wheel names and sizes, the CA bundle, the base
    image (name and id) and the torch index.  The same inputs give the same id, so a rebuild with nothing
    changed keeps the image and its id; a change to any of them changes it.  Doctor compares it across
    a swarm's nodes, which may hold different images under one tag."""
    source = source or source_root()
    digest = hashlib.sha256()

    def add(kind: str, name: str, data: bytes) -> None:
        digest.update(f"{kind}\0{name}\0{len(data)}\0".encode())
        digest.update(data)

    add("dockerfile", "Dockerfile", (root / "Dockerfile").read_bytes())
    for item in SOURCE_ITEMS:
        top = source / item
        files = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
        for path in sorted(files, key=lambda p: p.relative_to(source).as_posix()):
            name = path.relative_to(source).as_posix()
            if not _left_out(name):
                add("src", name, path.read_bytes())
    if options.wheelhouse is not None:
        for wheel in sorted(options.wheelhouse.glob("*.whl")):
            add("wheel", wheel.name, str(wheel.stat().st_size).encode())
    add("ca", "build/ca.crt", options.ca_bundle.read_bytes() if options.ca_bundle is not None else b"")
    add("base", options.base_image, base_image_id.encode())
    from ragctl.deploy import TORCH_INDEXES

    add("torch", options.torch_variant, TORCH_INDEXES.get(options.torch_variant, "").encode())
    return digest.hexdigest()


def build_of(attrs: dict) -> str:
    """The build id an image carries (its ``docker inspect``): RAGCTL_BUILD_ID in its environment, which
    is what its containers see (an image made ``FROM`` it keeps the label but may set another), else the
    label; "" for an image built before ragctl recorded one."""
    config = attrs.get("Config") or {}
    env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
    return env.get("RAGCTL_BUILD_ID") or (config.get("Labels") or {}).get(BUILD_LABEL) or ""


def image_build(name: str) -> str | None:
    """The build id of the image ``name`` on the engine ragctl talks to ("" when it carries none),
    or None when that engine does not hold it."""
    from docker.errors import ImageNotFound

    try:
        return build_of(engine().images.get(name).attrs)
    except ImageNotFound:
        return None


def check_base_image(base_image: str, timeout_s: float = 120) -> str:
    """Run the base image once: it must hold python3 with venv, redis-server and nginx.  Returns
    its Python version."""
    from docker.errors import DockerException, ImageNotFound

    client = engine()
    try:
        client.images.get(base_image)
    except ImageNotFound as exc:
        raise ImageError(f"The base image {base_image} is not on this engine.",
                         hint="make one: bash scripts/make-base-image.sh   (or docker load / docker pull one, "
                              "then ragctl build --base-image NAME)") from exc
    probe = ("python3 -c 'import ensurepip, venv, sys; print(\"%d.%d\" % sys.version_info[:2])' "
             "&& command -v redis-server >/dev/null && command -v nginx >/dev/null")
    container = client.containers.create(base_image, ["sh", "-c", probe], labels={"io.ragctl.probe": "base-image"})
    try:
        container.start()
        result = container.wait(timeout=timeout_s)
        output = container.logs().decode(errors="replace").strip()
    except DockerException as exc:
        raise ImageError(f"Could not run the base image {base_image}: {exc}") from exc
    finally:
        container.remove(force=True)
    if result.get("StatusCode") != 0:
        raise ImageError(f"The base image {base_image} lacks python3 (with venv), redis-server or nginx.",
                         hint="bash scripts/make-base-image.sh   (Debian bookworm with all three)",
                         stderr=output)
    return output.splitlines()[-1] if output else "?"


@dataclass
class BuiltImage:
    image: str
    id: str
    build: str  # the build id baked into it (build_id)
    size_bytes: int
    seconds: float
    base_image: str
    torch_variant: str
    wheelhouse: str | None
    python: str
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "log"}


#: A build step that copies a large layer (the final stage's ``COPY --from=build /opt/venv``, over 2 GB)
#: prints nothing and runs no container until it is done: on a busy disk that took more than the 120 s
#: that suits save and load, so a build is given longer before silence counts as a stall.
BUILD_INACTIVITY_S = 900.0


def registry_of(image: str) -> str | None:
    """The registry host of an image name (``10.0.0.5:5000/ragctl:1`` → ``10.0.0.5:5000``), or None
    for a name Docker would look up on Docker Hub."""
    first, slash, _ = image.partition("/")
    return first if slash and ("." in first or ":" in first or first == "localhost") else None


def split_tag(image: str) -> tuple[str, str]:
    """``HOST:PORT/name:tag`` → (``HOST:PORT/name``, ``tag``); a name without a tag is ``latest``
    (the colon of a registry's port is not a tag's)."""
    repository, colon, tag = image.rpartition(":")
    return (repository, tag) if colon and "/" not in tag else (image, "latest")


def check_pushable(image: str) -> str:
    """The registry ``image`` would be pushed to; ImageError (how to name one) when it names none.
    ``ragctl build --push`` asks this before its build, which takes minutes."""
    registry = registry_of(image)
    if registry is None:
        raise ImageError(f"{image} names no registry, so there is nowhere to push it.",
                         hint="set image = \"REGISTRY_HOST:PORT/ragctl\" under [stack] in ragctl.toml (then ragctl "
                              "build --push), or copy it: ragctl bundle save FILE, then ragctl bundle load FILE on "
                              "each node")
    return registry


def push_image(image: str, *, timeout_s: float = 1800) -> dict[str, str]:
    """Push a built image to the registry its name carries (a private one: Debian's docker-registry);
    {"image", "digest"}.  ImageError with the registry's words when it refuses."""
    from docker.errors import APIError, ImageNotFound

    registry = check_pushable(image)
    repository, tag = split_tag(image)
    client = engine(timeout_s=timeout_s)
    try:
        client.images.get(image)
    except ImageNotFound as exc:  # else the engine's complaint would read as the registry's refusal
        raise ImageError(f"The image {image} is not on this engine, so there is nothing to push.",
                         hint="ragctl build --push") from exc
    except APIError as exc:
        raise ImageError(f"The engine refused the name {image}: {exc.explanation or exc}",
                         hint="[stack] image = \"REGISTRY_HOST:PORT/ragctl\" (lower case)") from exc
    digest, errors = "", []
    watch = Inactivity(f"pushing {image}", hint=f"is the registry {registry} up?  curl http://{registry}/v2/",
                       limit_s=inactivity_limit(), cancel=client.close)
    try:
        for event in watch.stream(lambda: client.api.push(repository, tag=tag, stream=True, decode=True)):
            if event.get("error"):
                errors.append(str(event["error"]))
            digest = (event.get("aux") or {}).get("Digest") or digest
    except APIError as exc:
        errors.append(str(exc.explanation or exc))
    if errors or not digest:
        raise ImageError(f"The registry {registry} refused {image}.", stderr="\n".join(errors)[-1500:],
                         hint=f"check the registry (curl http://{registry}/v2/); a plain-HTTP registry must be in "
                              "the engine's insecure-registries (daemon.json) on this host and every node "
                              "(127.0.0.0/8 is by default)")
    return {"image": image, "digest": digest}


def build_image(root: Path, options: BuildOptions, *, progress: Progress | None = None,
                inactivity_s: float | None = None) -> BuiltImage:
    """Build the stack's image from ROOT/Dockerfile with the given options.  Fails (EngineStalled)
    only when the engine shows no progress for ``inactivity_s`` (default: the larger of
    inactivity_limit() and BUILD_INACTIVITY_S)."""
    options.check()
    python = check_base_image(options.base_image)
    limit = inactivity_s if inactivity_s is not None else max(inactivity_limit(), BUILD_INACTIVITY_S)
    client = engine(timeout_s=limit + SOCKET_SLACK_S)
    started = time.monotonic()
    log: list[str] = []
    build = build_id(root, options, base_image_id=client.images.get(options.base_image).id)
    # The build stage first, tagged, so that it stays the layer cache of the next build; then the image.
    for target, tag in (("build", f"{options.image}-build"), (None, options.image)):
        _build_target(client, root, options, target=target, tag=tag, log=log, progress=progress, limit_s=limit,
                      build=build)
    _remove_stale_images(client)
    image = client.images.get(options.image)
    return BuiltImage(image=options.image, id=image.id, build=build_of(image.attrs),
                      size_bytes=int(image.attrs.get("Size", 0)),
                      seconds=round(time.monotonic() - started, 1), base_image=options.base_image,
                      torch_variant=options.torch_variant,
                      wheelhouse=str(options.wheelhouse) if options.wheelhouse else None, python=python, log=log)


def _build_target(client, root: Path, options: BuildOptions, *, target: str | None, tag: str, log: list[str],
                  progress: Progress | None, limit_s: float, build: str) -> None:
    from docker.errors import APIError

    from ragctl.deploy import TORCH_INDEXES

    with tempfile.TemporaryFile() as context:
        write_build_context(root, options, context)
        context.seek(0)
        started = time.time()
        watch = Inactivity(f"the build of {tag}", hint="ragctl build", limit_s=limit_s, cancel=client.close,
                           so_far=lambda: f"last output: {log[-1][:100]!r}" if log else "",
                           # A RUN step that prints nothing (pip downloading torch) is work, not a stall.
                           alive=lambda: _build_step_running(started))
        try:
            stream = watch.stream(lambda: client.api.build(
                fileobj=context, custom_context=True, tag=tag, target=target, rm=True, forcerm=True, decode=True,
                # Host networking: pip reaches the index (or the proxy) the way the host does.
                network_mode="host", timeout=int(limit_s + SOCKET_SLACK_S),
                buildargs={"BASE_IMAGE": options.base_image, "TORCH_INDEX": TORCH_INDEXES[options.torch_variant],
                           # The final stage's only (the build stage would warn of an unused argument).
                           **({"RAGCTL_BUILD_ID": build} if target is None else {})},
                labels={"io.ragctl.version": __version__}))
            for chunk in stream:
                if "error" in chunk:
                    raise ImageError(f"The image build failed: {_ANSI.sub('', chunk['error']).strip()}",
                                     hint="read the build log above; ragctl build --help lists the "
                                          "closed-network options", stderr="\n".join(log[-30:]))
                for line in _ANSI.sub("", chunk.get("stream", "")).splitlines():
                    if not line.strip():
                        continue
                    log.append(line)
                    step = _STEP.match(line)
                    if step and progress:
                        progress(int(step.group(1)), int(step.group(2)), step.group(3)[:80])
        except APIError as exc:
            raise ImageError(f"The engine refused the build: {exc.explanation or exc}",
                             stderr="\n".join(log[-30:])) from exc


def _build_step_running(since: float) -> str | None:
    """The classic builder runs each RUN step in a container from an untagged image: one started
    since the build began means the build is at work, even when it prints nothing."""
    try:
        for container in engine(timeout_s=10).api.containers(filters={"status": "running"}):
            if container.get("Created", 0) >= since - 2 and str(container.get("Image", "")).startswith("sha256:"):
                return f"build step container {container['Id'][:12]} is running"
    except Exception:  # noqa: BLE001 - no answer is no evidence of work
        return None
    return None


def _remove_stale_images(client) -> list[str]:
    """Images of earlier builds that a new build untagged (ours by label: build stages and images)
    take gigabytes each: remove them, unless a container still uses one."""
    from docker.errors import APIError

    removed = []
    for image in client.images.list(filters={"dangling": True, "label": "io.ragctl.version"}):
        try:
            client.images.remove(image.id)
            removed.append(image.id)
        except APIError:  # still used by a container or another image: leave it
            continue
    return removed


def make_wheelhouse(dest: Path, *, torch_index: str | None = None, python_version: str = "3.11.2",
                    timeout_s: float = 3600) -> list[str]:
    """Every wheel the image needs, made with this machine's pip (x86_64 Linux, CPython 3.11 like the
    bookworm base).  ``torch_index`` is an extra index for torch (the CPU build's, by default in the
    CLI); None uses only pip's own configuration (a mirror, or find-links with a local torch wheel).

    pip evaluates environment markers for the Python that runs it, so requirements that only the
    image's Python needs (``async-timeout; python_full_version < "3.11.3"`` for bookworm's 3.11.2)
    are found by reading every wheel's metadata for ``python_version`` and added in a second pass."""
    dest.mkdir(parents=True, exist_ok=True)
    extra = ["--extra-index-url", torch_index] if torch_index else []
    _pip_wheel(dest, ["torch==2.13.0", f"{source_root()}[stack]", "setuptools", "wheel", *extra], timeout_s)
    for _ in range(3):
        missing = _requirements_only_for(dest, python_version)
        if not missing:
            break
        _pip_wheel(dest, [*sorted(missing), *extra], timeout_s)
    for own in dest.glob("ragctl-*.whl"):  # the image installs ragctl from source
        own.unlink()
    return sorted(p.name for p in dest.glob("*.whl"))


def _pip_wheel(dest: Path, args: list[str], timeout_s: float) -> None:
    command = [sys.executable, "-m", "pip", "wheel", "--wheel-dir", str(dest), "--find-links", str(dest), *args]
    with tempfile.TemporaryDirectory() as scratch:  # pip wheel of a source tree writes build/ into it
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=scratch)
    if done.returncode != 0:
        raise ImageError("pip could not make the wheelhouse.", command=command, stderr=done.stderr,
                         hint="check that this machine reaches PyPI (or its proxy: pip config set global.cert CA)")


def _requirements_only_for(wheelhouse: Path, python_version: str) -> set[str]:
    """Requirements of the wheels in ``wheelhouse`` that the target Python needs and that are not there."""
    import zipfile
    from email.parser import Parser

    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename

    present = {parse_wheel_filename(w.name)[0] for w in wheelhouse.glob("*.whl")}
    target = default_environment() | {"python_full_version": python_version,
                                      "python_version": ".".join(python_version.split(".")[:2]), "extra": ""}
    missing = set()
    for wheel in wheelhouse.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            name = next((n for n in archive.namelist() if n.endswith(".dist-info/METADATA")), None)
            metadata = Parser().parsestr(archive.read(name).decode(errors="replace")) if name else None
        for line in (metadata.get_all("Requires-Dist") or []) if metadata else []:
            requirement = Requirement(line)
            if requirement.marker is not None and requirement.marker.evaluate(target) \
                    and canonicalize_name(requirement.name) not in present:
                missing.add(str(requirement).split(";")[0].strip())
    return missing


# -- bundles ---------------------------------------------------------------------------------
@dataclass
class BundleManifest:
    ragctl_version: str
    created: str
    images: list[dict]  # {"name", "id", "size_bytes", "build" (the build id; absent in older bundles)}

    def to_dict(self) -> dict:
        return asdict(self)


def save_bundle(root: Path, path: Path, *, progress: Callable[[int], None] | None = None) -> BundleManifest:
    """``docker save`` of every image the stack needs, with ``ragctl-bundle.json`` (names and image
    ids, which are content digests) appended: one uncompressed tar that plain ``docker load`` reads too."""
    from docker.errors import APIError, ImageNotFound

    limit = inactivity_limit()
    client = engine(timeout_s=limit + SOCKET_SLACK_S)
    name = image_name(load_deploy_config(root))
    try:
        image = client.images.get(name)
    except ImageNotFound as exc:
        raise ImageError(f"The image {name} is not on this engine.", hint="ragctl build") from exc
    size = int(image.attrs.get("Size", 0))
    manifest = BundleManifest(ragctl_version=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              images=[{"name": name, "id": image.id, "size_bytes": size,
                                       "build": build_of(image.attrs)}])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    written = 0
    started = time.monotonic()

    def exporting() -> str | None:
        # The engine may copy the whole image aside before its first byte: that time grows with the size.
        if written == 0 and time.monotonic() - started < limit + size / EXPORT_BYTES_PER_S:
            return f"the engine is exporting {size / 1e9:.2f} GB before sending it"
        return None

    watch = Inactivity(f"docker save of {name}", hint=f"ragctl bundle save {path}", limit_s=limit,
                       cancel=client.close, alive=exporting,
                       so_far=lambda: f"{written / 1e9:.2f} GB of about {size / 1e9:.2f} GB written")
    try:
        with partial.open("wb") as out:
            for chunk in watch.stream(lambda: client.api.get_image(name)):  # a tag: the tar keeps it
                out.write(chunk)
                written += len(chunk)
                if progress:
                    progress(written)
    except APIError as exc:
        partial.unlink(missing_ok=True)
        raise ImageError(f"The engine refused to save {name}: {exc.explanation or exc}", hint="docker info") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    body = json.dumps(manifest.to_dict(), indent=2).encode()
    with tarfile.open(partial, mode="a") as tar:
        info = tarfile.TarInfo(BUNDLE_MANIFEST)
        info.size, info.mode, info.mtime = len(body), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(body))
    partial.replace(path)  # a bundle on disk is always whole
    return manifest


def read_bundle_manifest(path: Path) -> BundleManifest:
    if not path.is_file():
        raise ImageError(f"{path} does not exist.", hint="ragctl bundle save FILE   (on the machine with the images)")
    try:
        with tarfile.open(path, mode="r:") as tar:
            member = tar.extractfile(BUNDLE_MANIFEST)
            data = json.loads(member.read()) if member else None
    except (tarfile.TarError, KeyError, json.JSONDecodeError) as exc:
        raise ImageError(f"{path} is not a ragctl bundle ({exc}).",
                         hint="make one with: ragctl bundle save FILE") from exc
    if not isinstance(data, dict) or not data.get("images"):
        raise ImageError(f"{path} has no valid {BUNDLE_MANIFEST}.", hint="make one with: ragctl bundle save FILE")
    return BundleManifest(**{k: data[k] for k in ("ragctl_version", "created", "images")})


def load_bundle(path: Path, *, progress: Callable[[int], None] | None = None) -> BundleManifest:
    """Load a bundle into this engine and check that every image arrived with its recorded id."""
    from docker.errors import APIError, ImageNotFound

    manifest = read_bundle_manifest(path)
    limit = inactivity_limit()
    client = engine(timeout_s=limit + SOCKET_SLACK_S)
    total, sent, state = path.stat().st_size, 0, ["sending"]
    watch = Inactivity(f"docker load of {path.name}", hint=f"ragctl bundle load {path}", limit_s=limit,
                       cancel=client.close,
                       so_far=lambda: f"{sent / 1e9:.2f} of {total / 1e9:.2f} GB sent, {state[0]}")

    def chunks(size: int = LOAD_BLOCK_BYTES):
        nonlocal sent
        with path.open("rb") as handle:
            while block := handle.read(size):
                yield block
                sent += len(block)  # the engine took the block: that is progress
                watch.beat()
                if progress:
                    progress(sent)
        state[0] = "the engine is loading the layers"

    try:
        # Not quiet: the engine reports each layer as it loads it, which is progress after the upload.
        for message in watch.stream(lambda: client.api.load_image(chunks(), quiet=False)):
            if isinstance(message, dict) and message.get("error"):
                raise ImageError(f"The engine could not load {path}: {message['error']}",
                                 hint="copy the bundle again and retry")
            if isinstance(message, dict) and message.get("status"):
                state[0] = f"{message['status']} {message.get('id', '')}".strip()
    except APIError as exc:
        raise ImageError(f"The engine refused {path}: {exc.explanation or exc}", hint="docker load -i FILE") from exc
    for entry in manifest.images:
        try:
            loaded = client.images.get(entry["name"])
        except ImageNotFound as exc:
            raise ImageError(f"{entry['name']} was not loaded from {path}.", hint="docker load -i FILE") from exc
        if loaded.id != entry["id"]:
            raise ImageError(f"{entry['name']} loaded as {loaded.id}, but the bundle recorded {entry['id']}: "
                             "the file is damaged or was changed.", hint="copy the bundle again and retry")
    return manifest

