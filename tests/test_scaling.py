"""Beyond one node: the registry on object storage with replicas, a shared Redis cache, Portus's database
outside the cluster; and today's single-node layout untouched by default."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tests.conftest import CONFIG_SECRETS, MINIMAL_CONFIG, stack_config
from tests.objects import container, env, get, pod_spec, registry_config, secret_data, secret_files
from tests.render import Rendered
from tests.schema import validate_objects

# Every key Distribution 2.8's s3-aws driver reads (registry/storage/driver/s3-aws/s3.go at v2.8.2 and
# v2.8.3, FromParameters): anything else in storage.s3 is ignored, a misspelling silently.
S3_DRIVER_KEYS = {
    "accesskey", "secretkey", "regionendpoint", "region", "bucket", "encrypt", "keyid", "secure", "skipverify",
    "v4auth", "chunksize", "multipartcopychunksize", "multipartcopymaxconcurrency", "multipartcopythresholdsize",
    "rootdirectory", "storageclass", "useragent", "objectacl",
}
PORTUS_WORKLOADS = ("portus", "portus-background")


def _portus_pods(rendered: Rendered) -> list[dict[str, Any]]:
    return [get(rendered, "Deployment", name) for name in PORTUS_WORKLOADS] + rendered.objects_of("Job")


def _egress(rendered: Rendered, workload: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = get(rendered, "NetworkPolicy", f"allow-{workload}")["spec"]["egress"]
    return rules


def test_scale_example_objects_are_schema_valid(scale: Rendered, config_secrets: Rendered) -> None:
    assert validate_objects(scale.objects) == []
    assert validate_objects(config_secrets.objects) == []


def test_registry_on_object_storage_is_stateless_and_rolls_without_an_outage(scale: Rendered) -> None:
    registry = get(scale, "Deployment", "registry")
    assert registry["spec"]["replicas"] == 3
    assert registry["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    [spread] = pod_spec(registry)["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == registry["spec"]["selector"]["matchLabels"]
    budget = get(scale, "PodDisruptionBudget", "registry")["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"] == registry["spec"]["selector"]["matchLabels"]
    assert not any("persistentVolumeClaim" in volume for volume in pod_spec(registry)["volumes"])
    assert scale.objects_of("PersistentVolumeClaim") == []
    # One http.secret for every replica: an upload resumes on whichever pod its next request reaches.
    assert env(container(registry))["REGISTRY_HTTP_SECRET"] == ("secret", "registry-secret", "http-secret")


def test_registry_config_uses_only_the_s3_drivers_own_keys(scale: Rendered) -> None:
    storage = registry_config(scale)["storage"]
    assert set(storage) == {"s3", "redirect", "cache", "delete", "maintenance"}
    assert set(storage["s3"]) <= S3_DRIVER_KEYS
    assert storage["s3"]["bucket"] == "portus-registry"
    assert storage["s3"]["regionendpoint"] == "https://minio.storage.example.com:9000"
    # Below 5 MiB the registry refuses to start.
    assert storage["s3"]["chunksize"] == 16 << 20 >= 5 << 20
    assert storage["redirect"] == {"disable": True}
    assert storage["delete"] == {"enabled": True}
    assert storage["maintenance"]["uploadpurging"]["enabled"] is True


def test_credentials_come_from_the_named_secrets(scale: Rendered) -> None:
    registry_env = env(container(get(scale, "Deployment", "registry")))
    assert registry_env["REGISTRY_STORAGE_S3_ACCESSKEY"] == ("secret", "registry-s3", "accessKey")
    assert registry_env["REGISTRY_STORAGE_S3_SECRETKEY"] == ("secret", "registry-s3", "secretKey")
    assert registry_env["REGISTRY_REDIS_PASSWORD"] == ("secret", "registry-redis", "password")
    for workload in _portus_pods(scale):
        for spec in pod_spec(workload)["containers"]:
            # As every Portus secret: a file of the Secret, never an env secretKeyRef.
            assert "PORTUS_DB_PASSWORD" not in env(spec)
            assert secret_files(workload, spec)["PORTUS_DB_PASSWORD"] == ("secret", "portus-database", "password")


def test_credentials_from_stack_config_go_into_secrets_the_program_creates(config_secrets: Rendered) -> None:
    registry_env = env(container(get(config_secrets, "Deployment", "registry")))
    _, storage_secret, access_key = registry_env["REGISTRY_STORAGE_S3_ACCESSKEY"]
    assert secret_data(get(config_secrets, "Secret", storage_secret))[access_key] == CONFIG_SECRETS["s3AccessKey"]
    _, cache_secret, password_key = registry_env["REGISTRY_REDIS_PASSWORD"]
    assert secret_data(get(config_secrets, "Secret", cache_secret))[password_key] == CONFIG_SECRETS["redisPassword"]
    portus = get(config_secrets, "Deployment", "portus")
    _, database_secret, key = secret_files(portus, container(portus, "portus"))["PORTUS_DB_PASSWORD"]
    assert secret_data(get(config_secrets, "Secret", database_secret))[key] == CONFIG_SECRETS["databasePassword"]
    for record in config_secrets.resources:
        if record.type == "kubernetes:core/v1:Secret":
            assert "stringData" in record.secret_outputs, record.name


def test_cloud_identity_needs_no_credentials(render: Callable[[Mapping[str, object]], Rendered]) -> None:
    rendered = render({**MINIMAL_CONFIG, "registryStorage": {"type": "s3", "bucket": "images", "region": "us-east-1"}})
    registry_env = env(container(get(rendered, "Deployment", "registry")))
    assert not [name for name in registry_env if name.startswith("REGISTRY_STORAGE_S3_")]
    assert [o["metadata"]["name"] for o in rendered.objects_of("Secret") if "registry" in o["metadata"]["name"]] == [
        "registry-secret", "registry-tls",
    ]
    storage = registry_config(rendered)["storage"]
    assert "regionendpoint" not in storage["s3"] and storage["s3"]["secure"] is True
    # One replica on object storage still rolls one pod at a time.
    assert get(rendered, "Deployment", "registry")["spec"]["strategy"]["type"] == "RollingUpdate"
    assert rendered.objects_of("PodDisruptionBudget") == [get(rendered, "PodDisruptionBudget", "proxy")]


def test_redirect_sends_clients_to_the_bucket(render: Callable[[Mapping[str, object]], Rendered]) -> None:
    rendered = render({**MINIMAL_CONFIG, "registryStorage": {"type": "s3", "bucket": "images", "region": "auto",
                                                             "regionEndpoint": "https://r2.example.com",
                                                             "redirect": True}})
    assert registry_config(rendered)["storage"]["redirect"] == {"disable": False}


def test_redis_cache_is_shared_by_every_replica(scale: Rendered) -> None:
    config = registry_config(scale)
    assert config["storage"]["cache"] == {"blobdescriptor": "redis"}
    assert config["redis"]["addr"] == "redis.cache.svc.cluster.local:6379"
    assert config["redis"]["db"] == 1
    assert "password" not in config["redis"]


def test_external_database_replaces_mariadb(scale: Rendered) -> None:
    assert scale.objects_of("StatefulSet") == []
    assert not [o for o in scale.objects_of("Secret") if o["metadata"]["name"].startswith("mariadb")]
    passwords = {r.name for r in scale.resources if r.type == "random:index/randomPassword:RandomPassword"}
    assert not [name for name in passwords if name.startswith("database-")]
    for workload in _portus_pods(scale):
        portus_env = env(pod_spec(workload)["containers"][0])
        assert (portus_env["PORTUS_DB_ADAPTER"], portus_env["PORTUS_DB_HOST"], portus_env["PORTUS_DB_PORT"]) == (
            "mysql2", "portus-db.example.internal", "3306",
        ), workload["metadata"]["name"]
        assert (portus_env["PORTUS_DB_DATABASE"], portus_env["PORTUS_DB_USERNAME"]) == ("portus_production", "portus")
    assert scale.outputs["database"] == {
        "type": "external", "adapter": "mysql2", "host": "portus-db.example.internal", "port": "3306",
        "name": "portus_production",
    }


def test_network_policies_open_exactly_the_new_flows(scale: Rendered, config_secrets: Rendered) -> None:
    registry_out = [rule for rule in _egress(scale, "registry") if "podSelector" not in str(rule)]
    assert registry_out == [
        {"to": [{"ipBlock": {"cidr": "10.40.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 9000}]},
        {"ports": [{"protocol": "TCP", "port": 6379}]},
    ]
    for client in ("portus", "background", "migrate", "bootstrap"):
        outside = [rule for rule in _egress(scale, client) if "podSelector" not in str(rule)]
        assert outside == [{"to": [{"ipBlock": {"cidr": "10.50.0.0/24"}}],
                            "ports": [{"protocol": "TCP", "port": 3306}]}], client
    # No MariaDB pods, so nothing may reach them.
    assert not [rule for policy in scale.objects_of("NetworkPolicy") if policy["metadata"]["name"] == "allow-database"
                for rule in policy["spec"].get("ingress", [])]
    # Without regionEndpoint the object store is AWS on HTTPS; PostgreSQL listens on 5432.
    assert {"ports": [{"protocol": "TCP", "port": 443}]} in _egress(config_secrets, "registry")
    assert {"ports": [{"protocol": "TCP", "port": 5432}]} in _egress(config_secrets, "migrate")


def test_a_shared_claim_carries_replicas(render: Callable[[Mapping[str, object]], Rendered]) -> None:
    rendered = render({**MINIMAL_CONFIG, "registryReplicas": 2,
                       "registryStorage": {"type": "filesystem", "accessMode": "ReadWriteMany"}})
    claim = get(rendered, "PersistentVolumeClaim", "registry-data")["spec"]
    assert claim["accessModes"] == ["ReadWriteMany"]
    registry = get(rendered, "Deployment", "registry")
    assert (registry["spec"]["replicas"], registry["spec"]["strategy"]["type"]) == (2, "RollingUpdate")
    assert get(rendered, "PodDisruptionBudget", "registry")


def test_switching_to_object_storage_and_back_keeps_the_claim(
    render: Callable[[Mapping[str, object]], Rendered], prod: Rendered,
) -> None:
    base = stack_config("prod")
    s3 = render({**{k: v for k, v in base.items() if not k.endswith(":registryStorageSize")},
                 "portus:registryStorage": {"type": "s3", "bucket": "images", "region": "us-east-1"}})
    assert [o["metadata"]["name"] for o in s3.objects_of("PersistentVolumeClaim")] == ["mariadb-backup"]
    # What the switch drops from the stack is kept in the cluster: destroy-time options come from state.
    claim = next(r for r in prod.resources if r.type == "kubernetes:core/v1:PersistentVolumeClaim"
                 and r.name == "registry-data")
    assert claim.options["retainOnDelete"] is True
    # Switching back declares the same claim (same URN; adoptExisting takes the kept one over).
    again = render(base)
    same = next(r for r in again.resources if r.type == "kubernetes:core/v1:PersistentVolumeClaim"
                and r.name == "registry-data")
    assert same.options["urn"] == claim.options["urn"]
    assert same.inputs["metadata"]["name"] == "registry-data"


def test_default_stacks_keep_one_registry_on_its_claim(dev: Rendered, prod: Rendered) -> None:
    for rendered in (dev, prod):
        registry = get(rendered, "Deployment", "registry")
        assert registry["spec"]["replicas"] == 1
        assert registry["spec"]["strategy"] == {"type": "Recreate"}
        assert "topologySpreadConstraints" not in pod_spec(registry)
        assert registry_config(rendered)["storage"]["cache"] == {"blobdescriptor": "inmemory"}
        assert rendered.outputs["registryStorage"]["type"] == "filesystem"
        assert rendered.outputs["database"]["type"] == "internal"
