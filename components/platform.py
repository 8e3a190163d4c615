"""The whole platform: wires the PKI, the namespace, MariaDB, the registry, Portus, the edge (the
Ingresses, or the proxy) and the network policies so that every name, port and key agrees."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components import kube, monitoring, network, portus, registry
from components.config import PlatformConfig
from components.database import backup, generated_password
from components.edge import proxy
from components.edge.certificate import EdgeCertificate, EdgeCertificateArgs
from components.edge.exposure import EdgeParts, ProxyWorkload
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
        child = pulumi.ResourceOptions(
            parent=self, providers=[render_provider("render", render_to, self)] if render_to else None,
        )
        ns, domain = config.namespace, config.cluster_domain

        def fqdn(service: str) -> str:
            return kube.service_fqdn(service, ns, domain)

        def service_names(service: str) -> list[str]:
            return kube.service_dns_names(service, ns, domain)

        edge_mode = config.exposure
        pki = Pki("pki", PkiArgs(
            servers={
                # The proxy's certificate from the platform CA: its Service names, and the public names
                # (or addresses) when the platform CA signs the edge, whatever serves them (the Ingresses,
                # or the proxy). The exposure adds names to Portus's, where the token realm is inside.
                "proxy": [
                    *(config.public_hosts if config.tls.platform_signed else []),
                    *service_names(proxy.NAME),
                ],
                "portus": [*service_names(portus.NAME), *edge_mode.portus_names(config.host)],
                "registry": service_names(registry.NAME),
            },
            token_issuer=config.host,
            # Portus's key is RSA 2048. Puma 3.x (Portus 2.4.3's; ext/puma_http11/mini_ssl.c @ v3.10.0)
            # pins its ECDH curve to secp521r1 with SSL_CTX_set_tmp_ecdh; from OpenSSL 1.1 on that call sets
            # the server's whole group list, and the image's OpenSSL 1.1.0 (openSUSE Leap 15.0) also checks
            # the certificate's own curve against that list (ssl/t1_lib.c `tls1_check_ec_key`): an ECDSA
            # P-256 key has no usable curve and every handshake to Portus fails. An RSA key signs over any
            # group (ECDHE-RSA on secp521r1), which nginx's upstream client and the registry's Go client
            # offer (the rehearsal's Portus stand-in serves TLS as Puma does).
            rsa_servers=[portus.NAME],
        ), child)
        kept = kube.KeptData(
            config.storage.keep_on_destroy, config.storage.adopt_existing,
            kept_data_provider(self, config.storage.adopt_existing, render_to),
        )
        namespace = PlatformNamespace("namespace", PlatformNamespaceArgs(
            name=ns, ca_cert_pem=pki.ca_cert_pem, kept=kept,
        ), child)

        db = config.database.deploy(namespace.name, fqdn, kept, child)

        registry_settings = RegistrySettings(
            token_realm=f"{config.portal_url}/v2/token",
            token_service=config.registry_address,
            token_issuer=config.host,
            notification_url=f"https://{fqdn(portus.NAME)}:{portus.PORT}/v2/webhooks/events",
            log_level=config.log_level,
        )
        reg = Registry("registry", RegistryArgs(
            namespace=namespace.name,
            image=config.images.registry,
            resources=config.resources["registry"],
            replicas=config.registry_replicas,
            storage=config.storage.registry,
            cache=config.registry_cache,
            settings=registry_settings,
            certificate=pki.certificates["registry"],
            token_cert_pem=pki.token_cert_pem,
            http_secret=generated_password("registry-http-secret", 48, self).result,
            trust_bundle=namespace.trust_bundle,
            kept=kept,
        ), child)

        metric_targets = [monitoring.REGISTRY, *edge_mode.metric_targets()]
        if config.metrics.service_monitor:
            Monitoring("monitoring", MonitoringArgs(
                namespace=namespace.name,
                namespace_name=ns,
                config=config.metrics,
                targets=metric_targets,
                portus_deployment=portus.NAME,
                backup_cronjob=backup.NAME if config.backup.enabled else None,
                backup_deadline_seconds=backup.BACKUP_DEADLINE_SECONDS,
            ), child)
        policies = NetworkPolicies("network", NetworkPoliciesArgs(
            namespace=namespace.name,
            flows=[
                *network.FLOWS,
                *edge_mode.flows(),
                *config.database.flows(network.DATABASE_CLIENTS),
                *config.tls.flows(edge_mode.clients()),
                *([network.BACKUP_FLOW] if config.backup.enabled else []),
                *monitoring.scrape_flows(config.metrics, metric_targets),
                *network.token_realm_flows(config.host, config.exposure.port),
                *config.portus_settings.flows(),
                *(network.to_remote("registry", remote)
                  for remote in [*config.storage.registry.remotes(), *config.registry_cache.remotes()]),
            ],
        ), child)

        edge_certificate = EdgeCertificate("edge-certificate", config.tls, EdgeCertificateArgs(
            namespace=namespace.name,
            hosts=config.public_hosts,
            platform_certificate=pki.certificates["proxy"],
            platform_ca_pem=pki.ca_cert_pem,
            moved_from=proxy.component_urn("proxy", self),
        ), child)
        edge_tls = edge_certificate.tls
        realm = edge_mode.deploy(EdgeParts(
            namespace=namespace.name,
            public_hosts=config.public_hosts,
            realm_host=config.host,
            service_names=service_names,
            tls_secret=edge_tls.secret_name,
            platform_tls_secret=edge_certificate.platform_secret,
            ca_secret=namespace.ca_secret,
            trust_bundle=namespace.trust_bundle,
            portus=Backend(portus.NAME, portus.PORT, fqdn(portus.NAME)),
            registry=Backend(registry.NAME, registry.LISTEN_PORT, fqdn(registry.NAME)),
            proxy=ProxyWorkload(
                config.images.proxy, config.images.proxy_exporter, config.proxy_replicas, config.resources["proxy"],
            ),
            log_level=config.log_level,
            network_policies=policies,
        ), child)
        if render_to:
            # The provider returns a rendered object as declared: no API server assigned a cluster IP.
            pulumi.log.warn(
                "portus:renderYamlTo: Portus's pods get no hostAliases, as a rendered Service has no cluster IP; "
                f"inside the cluster {' and '.join(realm.hosts)} must resolve to the Service {realm.service_name}"
                " (README, \"Rendering YAML\")",
                resource=self,
            )

        web = Portus("portus", PortusArgs(
            namespace=namespace.name,
            image=config.images.portus,
            replicas=config.portus_replicas,
            web_resources=config.resources["portus"],
            background_resources=config.resources["background"],
            fqdn=config.host,
            realm_hosts=realm.hosts,
            realm_address=None if render_to else kube.cluster_ip(realm.service),
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
                hostname=f"{fqdn(registry.NAME)}:{registry.LISTEN_PORT}",
                external_hostname=config.registry_address,
            ),
            admin_username=config.admin_username,
            admin_email=config.admin_email,
            settings=config.portus_settings,
            wait_for=[*db.ready, reg],
        ), child)

        if config.node_trust.enabled:
            assert edge_tls.client_trust is not None, "config refuses nodeTrust without a CA to install"
            NodeTrust("node-trust", NodeTrustArgs(
                config=config.node_trust,
                registry_address=config.registry_address,
                ca_pem=edge_tls.client_trust,
                image=config.images.proxy,
                cluster_domain=domain,
            ), child)

        self.portal_url = config.portal_url
        self.registry_address = config.registry_address
        self.ca_certificate = edge_tls.client_trust
        self.admin_username = config.admin_username
        self.admin_password = web.admin_password
        self.docker_login = (
            f"docker login {config.registry_address} --username {config.admin_username} --password-stdin"
        )
        self.ca_install_paths = None if self.ca_certificate is None else ca_install_paths(config.registry_address)
        self.registry_storage = {**config.storage.registry.describe(), "replicas": str(config.registry_replicas)}
        self.database = config.database.describe()
        self.register_outputs({
            "portalUrl": self.portal_url,
            "registryHost": self.registry_address,
            **({} if self.ca_certificate is None else {"caCertificate": self.ca_certificate}),
            "adminUsername": self.admin_username,
            "adminPassword": self.admin_password,
        })
