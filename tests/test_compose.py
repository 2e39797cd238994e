"""docker-compose.yml and the Dockerfile against the code (no Docker engine needed): the services are
there, and the service's environment is exactly what Settings reads and starts with."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import ROOT

from cds_service.settings import ENV_VARS, Settings

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"


def interpolated(value: str) -> str:
    """Compose's ${NAME:-default} with nothing set in the environment: the default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def service_environment() -> dict[str, str]:
    return {name: interpolated(value) for name, value in COMPOSE["services"]["cds"]["environment"].items()}


def test_the_three_services_are_declared():
    services = COMPOSE["services"]
    assert set(services) == {"cds", "postgres", "fhir"}
    assert services["fhir"]["image"].startswith("hapiproject/hapi")
    assert services["postgres"]["image"].startswith("postgres")
    assert services["cds"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_service_environment_is_what_settings_read():
    environment = service_environment()
    unknown = {name for name in environment if name not in ENV_VARS and not name.startswith("CDS_POLICY_")}
    assert unknown == set(), "variables Settings does not read"
    # Everything a JWT-protected deployment needs is set.
    assert {"CDS_DATABASE_URL", "CDS_REQUIRE_JWT", "CDS_TRUSTED_ISSUERS", "CDS_PUBLIC_BASE_URL",
            "CDS_ALLOWED_FHIR_SERVERS"} <= set(environment)


def test_the_service_starts_with_this_environment():
    settings = Settings.from_env(service_environment())
    assert settings.require_jwt is True
    assert settings.trusted_issuers == {SANDBOX_ISSUER: f"{SANDBOX_ISSUER}/.well-known/jwks.json"}
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.public_base_url == "http://localhost:8080"
    assert settings.allowed_fhir_servers == ("http://fhir:8080/fhir",)


def test_the_service_reaches_postgres_and_hapi_by_their_compose_names():
    environment = service_environment()
    postgres = COMPOSE["services"]["postgres"]["environment"]
    url = environment["CDS_DATABASE_URL"]
    user, password = interpolated(postgres["POSTGRES_USER"]), interpolated(postgres["POSTGRES_PASSWORD"])
    assert url == f"postgresql+psycopg://{user}:{password}@postgres:5432/{postgres['POSTGRES_DB']}"
    fhir_port = COMPOSE["services"]["fhir"]["ports"][0].split(":")[1]
    assert environment["CDS_ALLOWED_FHIR_SERVERS"] == f"http://fhir:{fhir_port}/fhir"


def test_ports_match_the_serve_command():
    command = COMPOSE["services"]["cds"]["command"]
    assert command[:2] == ["cds-service", "serve"]
    port = command[command.index("--port") + 1]
    assert COMPOSE["services"]["cds"]["ports"] == [f"{port}:{port}"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    # The audience the sandbox's JWTs carry is the URL it calls: the published port.
    assert service_environment()["CDS_PUBLIC_BASE_URL"].endswith(f":{port}")


def test_dockerfile_installs_postgres_support_and_serves_on_the_exposed_port():
    assert 'pip install ".[postgres]"' in DOCKERFILE
    (exposed,) = re.findall(r"^EXPOSE (\d+)$", DOCKERFILE, re.M)
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.M).group(1))
    assert cmd[:2] == ["cds-service", "serve"] and cmd[cmd.index("--port") + 1] == exposed
    assert "USER" in DOCKERFILE  # not root


@pytest.mark.parametrize("name", ENV_VARS)
def test_every_setting_is_documented_in_the_readme(name):
    assert f"`{name}`" in (ROOT / "README.md").read_text(encoding="utf-8")
