"""Deploys the Portus private registry platform into one namespace of the current Kubernetes cluster."""

import pulumi

from components.config import load_config
from components.platform import PortusPlatform

config = load_config()
platform = PortusPlatform("portus", config)

pulumi.export("portalUrl", platform.portal_url)
pulumi.export("registryHost", platform.registry_address)
# The chain clients must trust, and where to put it: unset when a public CA signs the edge certificate.
if platform.ca_certificate is not None:
    pulumi.export("caCertificate", platform.ca_certificate)
pulumi.export("adminUsername", platform.admin_username)
pulumi.export("adminPassword", platform.admin_password)
pulumi.export("dockerLogin", platform.docker_login)
if platform.ca_install_paths is not None:
    pulumi.export("caInstallPaths", platform.ca_install_paths)
pulumi.export("registryStorage", platform.registry_storage)
pulumi.export("database", platform.database)
