"""deploy/ cannot run here (no Docker, no Kubernetes): check what can be checked without them. Every YAML file
parses; the compose file's services, dependencies, ports and nginx upstreams fit together; every APP_* variable
the files set is one tecorag reads (config.py's own mapping), and the settings they make validate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tecorag.config import _env_overrides, load_settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
KUBERNETES = DEPLOY / "kubernetes" / "tecorag.yaml"
COMPOSE_DEFAULT = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")   # ${NAME}, ${NAME:-default}
TECORAG_REPLICAS = ("tecorag-a", "tecorag-b")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def with_defaults(value) -> str:
    """What compose substitutes when the .env file sets nothing."""
    return COMPOSE_DEFAULT.sub(lambda match: match.group(2) or "", str(value))


def assert_tecorag_environment(environment: dict[str, str], where: str, tmp_path: Path) -> None:
    """Every APP_* name maps to a setting, and the settings they make are valid."""
    for name in environment:
        if name.startswith("APP_"):
            assert _env_overrides({name: "1"}), f"{where}: {name} is not a tecorag setting (src/tecorag/config.py)"
    settings = load_settings(path=None, environ=environment, home=tmp_path)
    assert not settings.milvus_is_embedded, f"{where}: replicas must share a Milvus server, not a Lite file"
    assert settings.catalog.url and settings.catalog.url.startswith("postgresql"), f"{where}: shared catalog"


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.y*ml")), ids=lambda path: path.name)
def test_every_yaml_file_parses(path: Path):
    documents = [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]
    assert documents and all(isinstance(document, dict) for document in documents)


def test_compose_services_dependencies_and_ports():
    services = compose()["services"]
    assert {"etcd", "minio", "standalone", "postgres", *TECORAG_REPLICAS, "nginx"} <= set(services)
    milvus_tag = services["standalone"]["image"].rpartition(":v")[2]
    assert tuple(int(part) for part in milvus_tag.split(".")[:2]) >= (2, 5), "hybrid retrieval needs Milvus 2.5+"
    assert services["standalone"]["environment"]["ETCD_ENDPOINTS"].split(":")[0] in services
    assert services["standalone"]["environment"]["MINIO_ADDRESS"].split(":")[0] in services

    published: list[str] = []
    for name, service in services.items():
        assert "image" in service, f"{name} has no image"
        depends = service.get("depends_on", [])
        for target in depends:
            assert target in services, f"{name} depends on unknown service {target}"
        if isinstance(depends, dict):
            for target, condition in depends.items():
                assert condition["condition"] in ("service_started", "service_healthy")
                if condition["condition"] == "service_healthy":
                    assert "healthcheck" in services[target], f"{name} waits for {target}'s health, never checked"
        for mapping in service.get("ports", []):
            host, _, container = str(mapping).rpartition(":")
            assert host.isdigit() and container.isdigit(), f"{name}: port mapping {mapping!r}"
            published.append(host)
    assert len(published) == len(set(published)), f"a host port is published twice: {published}"
    for replica in TECORAG_REPLICAS:
        assert "ports" not in services[replica], "replicas are reached through nginx only"


def test_compose_environment_is_tecorag_settings(tmp_path: Path):
    services = compose()["services"]
    for replica in TECORAG_REPLICAS:
        environment = {name: with_defaults(value) for name, value in services[replica]["environment"].items()}
        assert_tecorag_environment(environment, f"docker-compose {replica}", tmp_path)
        settings = load_settings(path=None, environ=environment, home=tmp_path)
        host = settings.milvus_uri.split("//")[1].split(":")[0]
        assert host in services, f"{replica}: Milvus host {host} is not a service"
        assert "@postgres:" in settings.catalog.url
        # Compose's own environment names (POSTGRES_PASSWORD) are the same in the database and the replica.
        assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] in services[replica]["environment"][
            "APP_CATALOG_URL"]
    assert services[TECORAG_REPLICAS[0]]["environment"] == services[TECORAG_REPLICAS[1]]["environment"]


def test_nginx_balances_both_replicas_on_their_port():
    services = compose()["services"]
    mounted = [volume.split(":")[0] for volume in services["nginx"]["volumes"]]
    assert "./nginx.conf" in mounted
    config = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    upstreams = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", config, flags=re.MULTILINE)
    assert {host for host, _ in upstreams} == set(TECORAG_REPLICAS)
    for host, port in upstreams:
        assert services[host]["environment"]["APP_SERVER_API_SERVER_PORT"] == port
    assert "proxy_buffering off" in config, "answers stream as Server-Sent Events"


def test_kubernetes_manifests_are_tecorag_settings(tmp_path: Path):
    documents = {document["kind"]: document for document in yaml.safe_load_all(KUBERNETES.read_text("utf-8"))}
    assert {"ConfigMap", "Secret", "Deployment", "Service"} <= set(documents)
    environment = {**documents["ConfigMap"]["data"], **documents["Secret"]["stringData"]}
    assert_tecorag_environment({name: str(value) for name, value in environment.items()}, "kubernetes", tmp_path)

    deployment = documents["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    sources = {source.get("configMapRef", source.get("secretRef"))["name"] for source in container["envFrom"]}
    assert sources == {documents["ConfigMap"]["metadata"]["name"], documents["Secret"]["metadata"]["name"]}
    port = container["ports"][0]
    assert str(port["containerPort"]) == environment["APP_SERVER_API_SERVER_PORT"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    service = documents["Service"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]

    milvus_values = yaml.safe_load((DEPLOY / "kubernetes" / "milvus-values.yaml").read_text("utf-8"))
    assert milvus_values["cluster"]["enabled"] is True
    tag = milvus_values["image"]["all"]["tag"].lstrip("v")
    assert tuple(int(part) for part in tag.split(".")[:2]) >= (2, 5)
    assert environment["APP_VECTOR_STORE_URI"].endswith(f":{milvus_values['service']['port']}")


def test_dockerfile_builds_from_files_that_exist_and_serves_the_configured_port():
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    root = DEPLOY.parent
    for line in re.findall(r"^COPY (.+)$", dockerfile, flags=re.MULTILINE):
        for source in line.split()[:-1]:
            assert (root / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
    assert 'CMD ["tecorag", "serve"]' in dockerfile
    assert "EXPOSE 8000" in dockerfile
    assert re.search(r"^USER \d+$", dockerfile, flags=re.MULTILINE), "numeric user for runAsNonRoot"
