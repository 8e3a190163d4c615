"""Where Portus's database is. Each variant is one small class that contributes what it owns: the
objects it declares (a StatefulSet with its claim and generated passwords, or only a Secret), Portus's
connection settings, and the network flows from the database's clients to it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pulumi

from components import database, kube, network
from components.database import Database, DatabaseArgs, DatabaseConnection
from components.database.backup import BackupConfig
from components.validation import SecretText

ADAPTERS = ("mysql2", "postgresql")
DEFAULT_PORTS = {"mysql2": 3306, "postgresql": 5432}


@dataclass
class DeployedDatabase:
    connection: DatabaseConnection
    ready: list[pulumi.Resource] = field(default_factory=list)
    """What must be ready before the migration connects."""


class DatabaseEndpoint(Protocol):
    @property
    def in_cluster(self) -> bool:
        """Whether the platform runs the database itself (and so owns its data and backups)."""

    @property
    def backup(self) -> BackupConfig:
        """The platform's backups of the database: only of one it runs."""

    def deploy(self, namespace: pulumi.Input[str], fqdn: Callable[[str], str], kept: kube.KeptData,
               opts: pulumi.ResourceOptions) -> DeployedDatabase:
        """Declares what the variant owns, with ``opts`` (parent, providers), and how Portus connects;
        ``fqdn`` gives a Service's in-cluster name."""

    def flows(self, clients: Sequence[str]) -> list[network.Flow]:
        """The connections ``clients`` (workloads of network.PEERS) open to the database."""

    def describe(self) -> dict[str, str]:
        """Where the database is, for the stack's outputs; never a credential."""


@dataclass(frozen=True)
class InternalDatabase:
    """MariaDB as a StatefulSet in the namespace, with its kept claim and generated passwords."""

    image: str
    resources: kube.ResourceSpec
    storage_size: str
    storage_class: str | None
    backups: BackupConfig

    @property
    def in_cluster(self) -> bool:
        return True

    @property
    def backup(self) -> BackupConfig:
        return self.backups

    def deploy(self, namespace: pulumi.Input[str], fqdn: Callable[[str], str], kept: kube.KeptData,
               opts: pulumi.ResourceOptions) -> DeployedDatabase:
        db = Database("database", DatabaseArgs(
            namespace=namespace, image=self.image, resources=self.resources, storage_size=self.storage_size,
            storage_class=self.storage_class, kept=kept, backup=self.backups, host=fqdn(database.NAME),
        ), opts)
        connection = DatabaseConnection(
            adapter="mysql2", host=fqdn(database.NAME),
            port=database.PORT, database=database.DATABASE, user=database.USER,
            password_secret=db.credentials_secret,
        )
        return DeployedDatabase(connection, [db])

    def flows(self, clients: Sequence[str]) -> list[network.Flow]:
        return [network.Flow(client, "database", database.PORT) for client in clients]

    def describe(self) -> dict[str, str]:
        return {"type": "internal", "adapter": "mysql2", "name": database.DATABASE}


@dataclass(frozen=True)
class ExternalDatabase:
    """A database the platform does not run (a managed MySQL/MariaDB or PostgreSQL): no StatefulSet, no
    claim, no generated password. The password comes from the user's Secret (key ``password``) or from
    stack config, as a Secret this variant creates."""

    adapter: str
    host: str
    port: int
    name: str
    username: str
    password_secret: str | None = None
    password: SecretText | None = None
    cidrs: tuple[str, ...] = ()
    """Address ranges of the database, to narrow the NetworkPolicy; empty: any address."""

    @property
    def in_cluster(self) -> bool:
        return False

    @property
    def backup(self) -> BackupConfig:
        return BackupConfig(enabled=False)

    def deploy(self, namespace: pulumi.Input[str], fqdn: Callable[[str], str], kept: kube.KeptData,
               opts: pulumi.ResourceOptions) -> DeployedDatabase:
        secret: pulumi.Input[str] | None = self.password_secret
        if self.password:
            secret = kube.opaque_secret(
                "database-external", "database-external", namespace, database.COMPONENT,
                {database.PASSWORD_KEY: self.password.output()}, opts,
            ).metadata.name
        assert secret is not None, "the configuration requires passwordSecret or password"
        return DeployedDatabase(DatabaseConnection(
            adapter=self.adapter, host=self.host, port=self.port, database=self.name, user=self.username,
            password_secret=secret,
        ))

    def flows(self, clients: Sequence[str]) -> list[network.Flow]:
        target = network.Outside(cidrs=self.cidrs)
        return [network.Flow(client, target, self.port) for client in clients]

    def describe(self) -> dict[str, str]:
        return {"type": "external", "adapter": self.adapter, "host": self.host, "port": str(self.port),
                "name": self.name}

