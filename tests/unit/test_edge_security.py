"""Issue #14 on the Compose stack, in the rendered files: unprivileged, read-only containers with no
capabilities, the data services on an internal network, and TLS at the edge with a certificate
the project makes (or the user provides).  Each compose file is checked by the real
`docker compose config`; the certificate by a real TLS handshake.  The running stack is checked by
tests/compose/test_compose_e2e.py."""

from __future__ import annotations

import os
import socket
import ssl
import threading

import httpx
import pytest

from ragctl.deploy import (
    CERT_FILE,
    IMAGE_UID,
    KEY_FILE,
    certificate_sans,
    compose_command,
    container_user,
    load_deploy_config,
    validate,
    write_rendered,
)
from ragctl.errors import ConfigError, DockerError
from ragctl.project import init_project, set_config_value
from tests.support.suite import skip_or_fail

try:
    compose_command()
except DockerError as exc:
    reason = f"Docker Compose v2 not found ({exc.hint})"
    skip_or_fail(reason, "render", module=True)

SERVICES = {"redis", "chroma", "postgres", "api", "worker", "beat", "flower", "nginx"}


def project(tmp_path, **stack):
    root = tmp_path / "edge"
    init_project(root, {}, runtime="docker", stack={"workers": 1, **stack})
    return root


def rendered(root, profiles=("flower", "nginx")):
    write_rendered(root)
    return validate(root, profiles=list(profiles))["services"]


@pytest.mark.parametrize("env", ["prod", "dev"])
def test_every_service_is_unprivileged_read_only_and_without_capabilities(tmp_path, env):
    root = project(tmp_path, nginx=True, flower=True, env=env)
    services = rendered(root)
    assert set(services) == SERVICES | {"fix-owner"}
    uid, gid = container_user(root, load_deploy_config(root))
    assert uid != 0 and gid != 0
    for name in SERVICES:
        service = services[name]
        assert service["user"] == f"{uid}:{gid}", name
        assert service["cap_drop"] == ["ALL"] and not service.get("cap_add"), name
        assert service["security_opt"] == ["no-new-privileges:true"], name
        assert service["read_only"] is True, name
        assert any(t.startswith("/tmp:") for t in service["tmpfs"]), name
        assert not service.get("privileged"), name
    # The one container that starts as root: only to chown, with no network, and it exits.
    owner = services["fix-owner"]
    assert owner["user"] == "0:0" and owner["cap_drop"] == ["ALL"]
    assert sorted(owner["cap_add"]) == ["CHOWN", "DAC_READ_SEARCH"] and owner["network_mode"] == "none"
    assert owner["read_only"] is True and owner["security_opt"] == ["no-new-privileges:true"]
    assert "ports" not in owner and "restart" not in owner
    assert f"chown -h {uid}:{gid}" in owner["command"][-1]
    assert {v["target"] for v in owner["volumes"]} == {"/own/data", "/own/logs", "/own/extracted_results",
                                                       "/own/hwp_data", "/own/certs", "/own/redis", "/own/chroma",
                                                       "/own/postgres"}
    # The data services start after it; everything else after them.
    for name in ("redis", "chroma", "postgres"):
        assert services[name]["depends_on"]["fix-owner"]["condition"] == "service_completed_successfully"


def test_each_service_mounts_only_what_it_needs(tmp_path):
    root = project(tmp_path, nginx=True, flower=True, env="prod")
    services = rendered(root)

    def mounts(name):
        return {(v.get("source"), v["target"], bool(v.get("read_only"))) for v in services[name].get("volumes", [])}

    assert mounts("redis") == {("redis_data", "/data", False), (str(root / "redis.conf"), "/app/redis.conf", True)}
    assert mounts("chroma") == {("chroma_data", "/chroma", False)}
    assert mounts("postgres") == {("postgres_data", "/pgdata", False)}
    assert mounts("beat") == set() and mounts("flower") == set()
    project_dirs = {(str(root / d), f"/app/project/{d}", False) for d in ("data", "logs", "extracted_results")}
    assert mounts("api") == project_dirs  # prod: no code, no hwp_data
    assert mounts("worker") == project_dirs | {(str(root / "hwp_data"), "/app/project/hwp_data", True)}
    assert mounts("nginx") == {(str(root / "nginx.conf"), "/app/nginx.conf", True),
                               (str(root / "certs"), "/app/certs", True)}


def test_data_services_are_on_an_internal_network_and_never_published(tmp_path):
    root = project(tmp_path, nginx=True, flower=True)
    write_rendered(root)
    model = validate(root, profiles=["flower", "nginx"])
    assert model["networks"]["rag-network"]["internal"] is True
    assert not model["networks"]["rag-edge"].get("internal")
    services = model["services"]
    for name in ("redis", "chroma", "postgres", "worker", "beat"):
        assert set(services[name]["networks"]) == {"rag-network"}, name
        assert "ports" not in services[name], name
    assert set(services["nginx"]["networks"]) == {"rag-edge"}
    assert "ports" not in services["api"]  # behind Nginx
    assert [p["host_ip"] for p in services["flower"]["ports"]] == ["127.0.0.1"]


def test_nginx_serves_https_on_unprivileged_ports_and_http_redirects(tmp_path):
    root = project(tmp_path, nginx=True, nginx_port=8443, nginx_http_port=8081, nginx_bind="127.0.0.1")
    services = rendered(root, ["nginx"])
    ports = {(p["published"], p["target"]) for p in services["nginx"]["ports"]}
    assert ports == {("8443", 8443), ("8081", 8080)}
    assert "https://127.0.0.1:8443/api/health" in services["nginx"]["healthcheck"]["test"][-1]
    conf = (root / "nginx.conf").read_text()
    assert "listen 8443 ssl;" in conf and "listen 8080;" in conf
    assert "ssl_certificate /app/certs/tls.crt;" in conf and "ssl_certificate_key /app/certs/tls.key;" in conf
    assert "return 301 https://$host:8443$request_uri;" in conf
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf and "X-Forwarded-Proto $scheme" in conf
    assert "Strict-Transport-Security" not in conf  # never for a self-signed certificate
    for path in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert f"{path}_temp_path /tmp/" in conf  # a read-only root: Nginx writes only to /tmp
    # Defaults: HTTPS on 443, the redirect on 80.
    set_config_value(root, "stack", "nginx_port", 443)
    set_config_value(root, "stack", "nginx_http_port", 80)
    write_rendered(root)
    assert "return 301 https://$host$request_uri;" in (root / "nginx.conf").read_text()


def test_without_nginx_the_api_is_the_https_edge(tmp_path):
    root = project(tmp_path, nginx=False, api_bind="0.0.0.0")
    api = rendered(root, [])["api"]
    command = api["command"]
    assert command[command.index("--ssl-certfile") + 1] == "/app/certs/tls.crt"
    assert command[command.index("--ssl-keyfile") + 1] == "/app/certs/tls.key"
    assert "https://127.0.0.1:8000" in api["healthcheck"]["test"][-1]
    assert (str(root / "certs"), "/app/certs") in {(v["source"], v["target"]) for v in api["volumes"]}


def test_self_signed_certificate_names_mode_and_a_real_handshake(tmp_path):
    root = project(tmp_path, nginx=True, nginx_bind="127.0.0.1", tls_hosts=["rag.internal", "10.1.2.3"])
    write_rendered(root)
    cert, key = root / CERT_FILE, root / KEY_FILE
    assert (key.stat().st_mode & 0o777) == 0o600 and (cert.stat().st_mode & 0o777) == 0o644
    assert {"DNS:localhost", "IP:127.0.0.1", "IP:::1", f"DNS:{socket.gethostname().lower()}", "DNS:rag.internal",
            "IP:10.1.2.3"} <= certificate_sans(cert)
    # Rendering again keeps it (same bytes); a new name makes a new one.
    before = cert.read_bytes()
    write_rendered(root)
    assert cert.read_bytes() == before
    toml = root / "ragctl.toml"  # (set_config_value writes one-line values; this is a list)
    toml.write_text(toml.read_text().replace('"10.1.2.3",', '"10.1.2.3", "qa.example",'))
    assert load_deploy_config(root).tls_hosts == ["rag.internal", "10.1.2.3", "qa.example"]
    write_rendered(root)
    assert cert.read_bytes() != before and "DNS:qa.example" in certificate_sans(cert)
    assert (key.stat().st_mode & 0o777) == 0o600

    # The CLI's client trusts the project's certificate file, and nothing else does.
    from ragctl.runtime.docker import DockerRuntime

    verify = DockerRuntime(root).api_verify()
    assert isinstance(verify, ssl.SSLContext) and verify.verify_mode == ssl.CERT_REQUIRED and verify.check_hostname
    assert [c["subject"] for c in verify.get_ca_certs()] == [((("organizationName", "ragctl"),), (("commonName", "edge"),))]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve(count):
        for _ in range(count):
            conn, _ = server.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, args=(2,), daemon=True)
    thread.start()
    try:
        assert httpx.get(f"https://127.0.0.1:{port}/", verify=verify, timeout=10).text == "ok"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"https://localhost:{port}/", timeout=10)  # the system's CAs: refused
    finally:
        thread.join(10)
        server.close()


def test_tls_off_only_on_loopback_and_hsts_only_with_a_provided_certificate(tmp_path):
    root = project(tmp_path, nginx=True, tls="off", nginx_bind="0.0.0.0")
    with pytest.raises(ConfigError, match="allowed only when the edge is bound to loopback"):
        load_deploy_config(root)
    set_config_value(root, "stack", "nginx_bind", "127.0.0.1")
    services = rendered(root, ["nginx"])
    assert [(p["published"], p["target"]) for p in services["nginx"]["ports"]] == [("80", 8080)]
    conf = (root / "nginx.conf").read_text()
    assert "ssl" not in conf.replace("ssl_", "") and "listen 8080;" in conf and "return 301" not in conf
    assert not (root / CERT_FILE).exists()
    api_off = project(tmp_path / "api", nginx=False, tls="off", api_bind="0.0.0.0")
    with pytest.raises(ConfigError, match="api_bind is '0.0.0.0'"):
        load_deploy_config(api_off)

    hsts = project(tmp_path / "hsts", nginx=True, hsts=True)
    with pytest.raises(ConfigError, match="hsts = true needs tls"):
        load_deploy_config(hsts)


def test_a_provided_certificate_is_used_as_is(tmp_path):
    root = project(tmp_path, nginx=True, tls="provided", hsts=True)
    with pytest.raises(ConfigError, match="certs/tls.crt and .*certs/tls.key are missing"):
        write_rendered(root)
    # The user's files (here made by openssl, as a company CA would hand them over).
    other = project(tmp_path / "ca", nginx=True)
    write_rendered(other)
    (root / "certs").mkdir()
    (root / CERT_FILE).write_bytes((other / CERT_FILE).read_bytes())
    (root / KEY_FILE).write_bytes((other / KEY_FILE).read_bytes())
    (root / KEY_FILE).chmod(0o644)
    write_rendered(root)
    assert (root / CERT_FILE).read_bytes() == (other / CERT_FILE).read_bytes()  # not replaced
    assert ((root / KEY_FILE).stat().st_mode & 0o777) == 0o600  # tightened
    assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in (root / "nginx.conf").read_text()
    from ragctl.runtime.docker import DockerRuntime

    assert DockerRuntime(root).api_verify() is True  # the system's trust store (or SSL_CERT_FILE)


def test_the_services_uid_is_never_root(tmp_path):
    root = project(tmp_path)
    config = load_deploy_config(root)
    if os.geteuid() == 0:
        assert container_user(root, config) == (IMAGE_UID, IMAGE_UID)  # root's project: the image's user
        os.chown(root, 4321, 4322)
        assert container_user(root, config) == (4321, 4322)  # else the project folder's owner
    else:
        assert container_user(root, config) == (os.getuid(), root.stat().st_gid)
    set_config_value(root, "stack", "uid", 2000)
    set_config_value(root, "stack", "gid", 2001)
    assert container_user(root, load_deploy_config(root)) == (2000, 2001)
    set_config_value(root, "stack", "uid", 0)
    with pytest.raises(ConfigError, match="uid"):
        load_deploy_config(root)
