"""The network the Lambdas run in: private subnets with a NAT route to Earthdata Login and the DAAC buckets.

Subnets planned by hand run out of room for private-with-NAT subnets: a new VPC gets one public and one private
subnet per AZ carved from a single configurable CIDR by CDK, or an existing VPC is imported from ids alone
(`Vpc.from_vpc_attributes`), so synth never needs an AWS lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct


@dataclass(frozen=True)
class NetworkProps:
    """`vpc_id` set = import that VPC with `private_subnet_ids` (one per AZ); else create one from `cidr`."""

    cidr: str = "10.42.0.0/16"
    nat_gateways: int = 1
    max_azs: int = 2
    availability_zones: tuple[str, ...] = ()
    vpc_id: str | None = None
    private_subnet_ids: tuple[str, ...] = ()
    # Escape hatch: extra keyword arguments for `ec2.Vpc` when a new VPC is created.
    vpc_overrides: dict[str, Any] = field(default_factory=dict)


class Network(Construct):
    """Public members: `vpc`, `subnets` (where the Lambdas go), `flow_logs` (None for an imported VPC)."""

    def __init__(self, scope: Construct, construct_id: str, props: NetworkProps) -> None:
        super().__init__(scope, construct_id)
        self.flow_logs: ec2.FlowLog | None = None
        if props.vpc_id:
            self.vpc: ec2.IVpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=props.vpc_id,
                availability_zones=list(props.availability_zones),
                private_subnet_ids=list(props.private_subnet_ids),
            )
        else:
            vpc = ec2.Vpc(
                self,
                "Vpc",
                ip_addresses=ec2.IpAddresses.cidr(props.cidr),
                nat_gateways=props.nat_gateways,
                availability_zones=list(props.availability_zones) or None,
                max_azs=None if props.availability_zones else props.max_azs,
                subnet_configuration=[
                    # No cidr_mask: CDK splits the VPC range evenly, so any /16../24 range fits.
                    ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                    ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                ],
                **props.vpc_overrides,
            )
            log_group = logs.LogGroup(self, "FlowLogGroup", retention=logs.RetentionDays.ONE_MONTH)
            self.flow_logs = vpc.add_flow_log(
                "FlowLogs", destination=ec2.FlowLogDestination.to_cloud_watch_logs(log_group)
            )
            self.vpc = vpc
        self.subnets = ec2.SubnetSelection(subnets=self.vpc.private_subnets)
