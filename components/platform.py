"""The whole platform: wires the PKI, the namespace, MariaDB, the registry, Portus, the edge (the
Ingresses, or the proxy) and the network policies so that every name, port and key agrees."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube, monitoring, network, portus, registry
from components.config import PlatformConfig
from components.database import backup, generated_password
from components.database.endpoint import DeployedDatabase
from components.edge import proxy
from components.edge.certificate import EdgeCertificate, EdgeCertificateArgs
from components.edge.exposure import EdgeParts, ProxyWorkload, Realm
from components.edge.ingress import Backend
from components.monitoring import Monitoring, MonitoringArgs
from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from components.network import NetworkPolicies, NetworkPoliciesArgs
from components.node_trust import NodeTrust, NodeTrustArgs
from components.pki import Pki, PkiArgs
from components.portus import Portus, PortusArgs, RegistryRecord
from components.registry import Registry, RegistryArgs
from components.registry.config_file import RegistrySettings

REGISTRY_RECORD_NAME = "registry"


def ca_install_paths(registry_address: str) -> dict[str, str]:
    """Where a Docker host's container runtime looks for the CA of ``registry_address``."""
    return {
        "docker": f"/etc/docker/certs.d/{registry_address}/ca.crt",
        "containerd": f"/etc/containerd/certs.d/{registry_address}/ca.crt",
        "podman": f"/etc/containers/certs.d/{registry_address}/ca.crt",
    }


def _kubeconfig() -> pulumi.Input[str]:
    """``kubernetes:kubeconfig``, as a secret: an explicit provider's inputs are stored in state, and the
    provider's schema does not mark it secret (provider/pkg/gen/schema.go @ v4.32.0). Unset, it is "",
    which the provider treats as unset (provider.go ``Configure``): it loads the kubeconfig at run time
    the way the default provider and kubectl do (``$KUBECONFIG``, ``~/.kube/config``), and the SDK does not
    copy ``$KUBECONFIG`` into state, as it does when the value is None."""
    kubeconfig = pulumi.Config("kubernetes").get_secret("kubeconfig")
    return "" if kubeconfig is None else kubeconfig


def render_provider(name: str, folder: str, parent: pulumi.Resource) -> k8s.Provider:
    """A provider that writes each object to ``folder`` instead of applying it (provider.go ``renderYaml``
    @ v4.29.0..v4.32.0: ``1-manifest/<apiVersion>-<kind>-<namespace>-<name>.yaml``, Secrets as given, in
    plain text). ``always_render`` (4.26.0+) writes every object on every run, changed or not, so the folder
    always holds the whole platform. The SDK copies ``$KUBECONFIG`` into an unset ``kubeconfig``, which
    CheckConfig refuses next to a render folder before 4.32.0 (#4399); an empty one counts as unset there
    and in Configure."""
    return k8s.Provider(
        name, render_yaml_to_directory=folder, always_render=True, kubeconfig="",
        opts=pulumi.ResourceOptions(parent=parent),
    )


def kept_data_provider(parent: pulumi.Resource, adopt_existing: bool, render_to: str | None) -> k8s.Provider:
    """The provider of the objects ``pulumi destroy`` keeps (namespace, registry claim, database).

    Rules from pulumi-kubernetes' source (await.go ``Creation`` and ``patchForce``, provider.go
    ``Configure`` @ v4.29.0..v4.32.0):
    - With server-side apply, a create of an object that exists adopts it only with
      ``upsertExistingObjects``; without, it fails with AlreadyExists. It is set from
      ``portus:adoptExisting`` alone (an explicit value wins over PULUMI_K8S_UPSERT_EXISTING_OBJECTS).
    - Every stack's provider picks its own random field manager, so the objects an earlier stack applied
      are owned by a manager this one is not; a field whose value differs (the StatefulSet's
      ``checksum/secret``, say) is a conflict. ``enablePatchForce`` takes such fields over.
    Only these fixed-name objects use it, so no other resource can be adopted. It deploys where the
    default provider does (``kubernetes:kubeconfig``, ``context``, ``cluster``), or renders."""
    if render_to:
        return render_provider("kept-data", render_to, parent)
    cluster = pulumi.Config("kubernetes")
    return k8s.Provider(
        "kept-data",
        kubeconfig=_kubeconfig(),
        context=cluster.get("context"),
        cluster=cluster.get("cluster"),
        enable_server_side_apply=True,
        upsert_existing_objects=adopt_existing,
        enable_patch_force=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True)
class _Scope:
    """What every part is built with: the config, and the options that make it a child of the platform
    (rendering, through the render provider)."""

    config: PlatformConfig
    child: pulumi.ResourceOptions

    def fqdn(self, service: str) -> str:
        return kube.service_fqdn(service, self.config.namespace, self.config.cluster_domain)

    def service_names(self, service: str) -> list[str]:
        return kube.service_dns_names(service, self.config.namespace, self.config.cluster_domain)


def _pki(scope: _Scope) -> Pki:
    config = scope.config
    return Pki("pki", PkiArgs(
        servers={
            # The proxy's certificate from the platform CA: its Service names, and the public names (or
            # addresses) when the platform CA signs the edge, whatever serves them (the Ingresses, or the
            # proxy). The exposure adds names to Portus's, where the token realm is inside.
            "proxy": [
                *(config.public_hosts if config.tls.platform_signed else []),
                *scope.service_names(proxy.NAME),
            ],
            "portus": [*scope.service_names(portus.NAME), *config.exposure.portus_names(config.host)],
            "registry": scope.service_names(registry.NAME),
        },
        token_issuer=config.host,
        # Portus's key is RSA 2048. Puma 3.x (Portus 2.4.3's; ext/puma_http11/mini_ssl.c @ v3.10.0) pins
        # its ECDH curve to secp521r1 with SSL_CTX_set_tmp_ecdh; from OpenSSL 1.1 on that call sets the
        # server's whole group list, and the image's OpenSSL 1.1.0 (openSUSE Leap 15.0) also checks the
        # certificate's own curve against that list (ssl/t1_lib.c `tls1_check_ec_key`): an ECDSA P-256 key
        # has no usable curve and every handshake to Portus fails. An RSA key signs over any group
        # (ECDHE-RSA on secp521r1), which nginx's upstream client and the registry's Go client offer (the
        # rehearsal's Portus stand-in serves TLS as Puma does).
        rsa_servers=[portus.NAME],
    ), scope.child)


def _registry(scope: _Scope, namespace: PlatformNamespace, pki: Pki, kept: kube.KeptData,
              http_secret: pulumi.Output[str]) -> Registry:
    config = scope.config
    return Registry("registry", RegistryArgs(
        namespace=namespace.name,
        image=config.images.registry,
        resources=config.resources["registry"],
        replicas=config.registry_replicas,
        storage=config.storage.registry,
        cache=config.registry_cache,
        settings=RegistrySettings(
            token_realm=f"{config.portal_url}/v2/token",
            token_service=config.registry_address,
            token_issuer=config.host,
            notification_url=f"https://{scope.fqdn(portus.NAME)}:{portus.PORT}/v2/webhooks/events",
            log_level=config.log_level,
        ),
        certificate=pki.certificates["registry"],
        token_cert_pem=pki.token_cert_pem,
        http_secret=http_secret,
        trust_bundle=namespace.trust_bundle,
        kept=kept,
    ), scope.child)


def _monitoring(scope: _Scope, namespace: PlatformNamespace, targets: list[monitoring.Target]) -> None:
    config = scope.config
    if config.metrics.service_monitor:
        Monitoring("monitoring", MonitoringArgs(
            namespace=namespace.name,
            namespace_name=config.namespace,
            config=config.metrics,
            targets=targets,
            portus_deployment=portus.NAME,
            backup_cronjob=backup.NAME if config.backup.enabled else None,
            backup_deadline_seconds=backup.BACKUP_DEADLINE_SECONDS,
        ), scope.child)


def _network_policies(scope: _Scope, namespace: PlatformNamespace,
                      metric_targets: list[monitoring.Target]) -> NetworkPolicies:
    config = scope.config
    return NetworkPolicies("network", NetworkPoliciesArgs(
        namespace=namespace.name,
        flows=[
            *network.FLOWS,
            *config.exposure.flows(),
            *config.database.flows(network.DATABASE_CLIENTS),
            *config.tls.flows(config.exposure.clients()),
            *([network.BACKUP_FLOW] if config.backup.enabled else []),
            *monitoring.scrape_flows(config.metrics, metric_targets),
            *network.token_realm_flows(config.host, config.exposure.port),
            *config.portus_settings.flows(),
            *(network.to_remote("registry", remote)
              for remote in [*config.storage.registry.remotes(), *config.registry_cache.remotes()]),
        ],
    ), scope.child)


def _edge(scope: _Scope, namespace: PlatformNamespace, pki: Pki, policies: NetworkPolicies,
          platform: pulumi.Resource) -> tuple[EdgeCertificate, Realm]:
    """The edge certificate and what the exposure deploys; where Portus's pods find the token realm."""
    config = scope.config
    edge_certificate = EdgeCertificate("edge-certificate", config.tls, EdgeCertificateArgs(
        namespace=namespace.name,
        hosts=config.public_hosts,
        platform_certificate=pki.certificates["proxy"],
        platform_ca_pem=pki.ca_cert_pem,
        moved_from=proxy.component_urn("proxy", platform),
    ), scope.child)
    realm = config.exposure.deploy(EdgeParts(
        namespace=namespace.name,
        public_hosts=config.public_hosts,
        realm_host=config.host,
        service_names=scope.service_names,
        tls_secret=edge_certificate.tls.secret_name,
        platform_tls_secret=edge_certificate.platform_secret,
        ca_secret=namespace.ca_secret,
        trust_bundle=namespace.trust_bundle,
        portus=Backend(portus.NAME, portus.PORT, scope.fqdn(portus.NAME)),
        registry=Backend(registry.NAME, registry.LISTEN_PORT, scope.fqdn(registry.NAME)),
        proxy=ProxyWorkload(
            config.images.proxy, config.images.proxy_exporter, config.proxy_replicas, config.resources["proxy"],
        ),
        log_level=config.log_level,
        network_policies=policies,
    ), scope.child)
    if config.render_yaml_to:
        # The provider returns a rendered object as declared: no API server assigned a cluster IP.
        pulumi.log.warn(
            "portus:renderYamlTo: Portus's pods get no hostAliases, as a rendered Service has no cluster IP; "
            f"inside the cluster {' and '.join(realm.hosts)} must resolve to the Service {realm.service_name}"
            " (README, \"Rendering YAML\")",
            resource=platform,
        )
    return edge_certificate, realm


def _portus(scope: _Scope, namespace: PlatformNamespace, pki: Pki, db: DeployedDatabase, reg: Registry,
            edge_certificate: EdgeCertificate, realm: Realm) -> Portus:
    config = scope.config
    return Portus("portus", PortusArgs(
        namespace=namespace.name,
        image=config.images.portus,
        replicas=config.portus_replicas,
        web_resources=config.resources["portus"],
        background_resources=config.resources["background"],
        fqdn=config.host,
        realm_hosts=realm.hosts,
        realm_address=None if config.render_yaml_to else kube.cluster_ip(realm.service),
        log_level=config.log_level,
        signup_enabled=config.signup_enabled,
        catalog_sync=config.catalog_sync,
        database=db.connection,
        certificate=pki.certificates["portus"],
        token_key_pem=pki.token_key_pem,
        trust_bundle=namespace.trust_bundle,
        edge_trust=edge_certificate.edge_trust,
        edge_trust_pem=edge_certificate.edge_trust_pem,
        registry=RegistryRecord(
            name=REGISTRY_RECORD_NAME,
            hostname=f"{scope.fqdn(registry.NAME)}:{registry.LISTEN_PORT}",
            external_hostname=config.registry_address,
        ),
        admin_username=config.admin_username,
        admin_email=config.admin_email,
        settings=config.portus_settings,
        wait_for=[*db.ready, reg],
    ), scope.child)


def _node_trust(scope: _Scope, ca_pem: pulumi.Input[str] | None) -> None:
    config = scope.config
    if config.node_trust.enabled:
        assert ca_pem is not None, "config refuses nodeTrust without a CA to install"
        NodeTrust("node-trust", NodeTrustArgs(
            config=config.node_trust,
            registry_address=config.registry_address,
            ca_pem=ca_pem,
            image=config.images.proxy,
            cluster_domain=config.cluster_domain,
        ), scope.child)


class PortusPlatform(pulumi.ComponentResource):
    portal_url: str
    registry_address: str
    ca_certificate: pulumi.Input[str] | None
    """The chain clients must trust; None when a public CA signs the edge certificate."""
    admin_username: str
    admin_password: pulumi.Output[str]
    docker_login: str
    ca_install_paths: dict[str, str] | None
    """Where to install ``ca_certificate``; None when there is nothing to install."""
    registry_storage: dict[str, str]
    database: dict[str, str]

    def __init__(self, name: str, config: PlatformConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:platform:PortusPlatform", name, None, opts)
        render_to = config.render_yaml_to
        # Rendering, every object goes through a provider that writes files; deploying, through the
        # default provider as always (a resource moved to another provider would change).
        scope = _Scope(config, pulumi.ResourceOptions(
            parent=self, providers=[render_provider("render", render_to, self)] if render_to else None,
        ))
        pki = _pki(scope)
        kept = kube.KeptData(
            config.storage.keep_on_destroy, config.storage.adopt_existing,
            kept_data_provider(self, config.storage.adopt_existing, render_to),
        )
        namespace = PlatformNamespace("namespace", PlatformNamespaceArgs(
            name=config.namespace, ca_cert_pem=pki.ca_cert_pem, kept=kept,
        ), scope.child)
        db = config.database.deploy(namespace.name, scope.fqdn, kept, scope.child)
        reg = _registry(scope, namespace, pki, kept, generated_password("registry-http-secret", 48, self).result)
        metric_targets = [monitoring.REGISTRY, *config.exposure.metric_targets()]
        _monitoring(scope, namespace, metric_targets)
        policies = _network_policies(scope, namespace, metric_targets)
        edge_certificate, realm = _edge(scope, namespace, pki, policies, self)
        web = _portus(scope, namespace, pki, db, reg, edge_certificate, realm)
        client_trust = edge_certificate.tls.client_trust
        _node_trust(scope, client_trust)
        self._publish(config, client_trust, web.admin_password)

    def _publish(self, config: PlatformConfig, client_trust: pulumi.Input[str] | None,
                 admin_password: pulumi.Output[str]) -> None:
        """What the stack exports: how to reach the platform, what to trust, how to sign in."""
        self.portal_url = config.portal_url
        self.registry_address = config.registry_address
        self.ca_certificate = client_trust
        self.admin_username = config.admin_username
        self.admin_password = admin_password
        self.docker_login = (
            f"docker login {config.registry_address} --username {config.admin_username} --password-stdin"
        )
        self.ca_install_paths = None if client_trust is None else ca_install_paths(config.registry_address)
        self.registry_storage = {**config.storage.registry.describe(), "replicas": str(config.registry_replicas)}
        self.database = config.database.describe()
        self.register_outputs({
            "portalUrl": self.portal_url,
            "registryHost": self.registry_address,
            **({} if client_trust is None else {"caCertificate": client_trust}),
            "adminUsername": self.admin_username,
            "adminPassword": self.admin_password,
        })
