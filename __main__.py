"""Deploys the Portus private registry platform into one namespace of the current Kubernetes cluster."""

import pulumi

from components.config import load_config
from components.platform import PortusPlatform

config = load_config()
platform = PortusPlatform("portus", config)

pulumi.export("portalUrl", platform.portal_url)
pulumi.export("registryHost", platform.registry_address)
pulumi.export("caCertificate", platform.ca_cert_pem)
pulumi.export("adminUsername", platform.admin_username)
pulumi.export("adminPassword", platform.admin_password)
pulumi.export("dockerLogin", platform.docker_login)
pulumi.export("caInstallPaths", platform.ca_install_paths)
pulumi.export("registryStorage", platform.registry_storage)
pulumi.export("database", platform.database)
