"""CloudFront in front of the raster API: tiles are deterministic functions of path + query, so an edge cache turns a
popular map's repeated tile requests into zero Lambda invocations.

What is cached is decided by the origin: TTLs follow the API's `Cache-Control` (default 0, so a response without one,
like `/healthz`, is never cached). The cache key is the path, every query string (`provider`, `url`, rescale, ...:
any of them changes the image), the normalised `Accept-Encoding` (gzip/brotli), `Authorization` and `Origin`.

`Origin` is in the key because the API's CORS middleware answers differently with and without it (no
`Access-Control-Allow-Origin` for a request without `Origin`, the echoed origin for a restricted list): with `Origin`
outside the key, whichever request came first would decide the CORS headers every later viewer gets.

`Authorization` is in the key too. Restricted providers need the caller's bearer token at the origin, and CloudFront
forwards `Authorization` only when it is part of the cache key (it refuses it in an origin request policy): so a
response to a token is only ever served again to a request with the very same token, and anonymous callers, who send
none, share one entry per URL. The API marks whatever depends on a restricted provider `private, no-store` besides,
so such a response is not stored at all; the key is what keeps one caller's answer from another if a route ever
forgets. A token sent as the `access_token` query parameter (map clients that cannot set headers) is in the key with
every other query string.

`Accept` is not forwarded: a content negotiated on a header outside the cache key would serve the HTML of one
viewer to the JSON client of another; without it the API answers its default media type, the same for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

ORIGIN_VERIFY_HEADER = "x-origin-verify"
# Headers that go into the cache key (and so, automatically, to the origin).
CACHE_KEY_HEADERS = ("Authorization", "Origin")
# Headers the origin needs that must not split the cache: CORS preflights (OPTIONS is never cached) and the
# content type of the POST routes' GeoJSON bodies.
FORWARDED_HEADERS = ("Access-Control-Request-Method", "Access-Control-Request-Headers", "Content-Type")
MAX_TTL = Duration.days(365)


@dataclass(frozen=True)
class CdnProps:
    """The API to put behind CloudFront; a custom domain needs an ACM certificate in us-east-1 (CloudFront's rule)."""

    api: apigw.HttpApi
    origin_verify_secret: secretsmanager.ISecret
    domain_name: str | None = None
    certificate_arn: str | None = None
    web_acl_arn: str | None = None
    # CloudFront's additional metrics (CacheHitRate, origin latency, error rates by status): about 8 CloudWatch
    # metrics per distribution, billed as custom metrics.
    additional_metrics: bool = True
    price_class: cloudfront.PriceClass = cloudfront.PriceClass.PRICE_CLASS_ALL


class Cdn(Construct):
    """Public members: `distribution`, `cache_policy`, `origin_request_policy`, `response_headers_policy`, `url`."""

    def __init__(self, scope: Construct, construct_id: str, props: CdnProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.cache_policy = cloudfront.CachePolicy(
            self,
            "CachePolicy",
            comment="Raster tiles: path + all query strings + Accept-Encoding + Authorization + Origin; "
            "TTLs from Cache-Control",
            query_string_behavior=cloudfront.CacheQueryStringBehavior.all(),
            header_behavior=cloudfront.CacheHeaderBehavior.allow_list(*CACHE_KEY_HEADERS),
            cookie_behavior=cloudfront.CacheCookieBehavior.none(),
            enable_accept_encoding_gzip=True,
            enable_accept_encoding_brotli=True,
            min_ttl=Duration.seconds(0),
            default_ttl=Duration.seconds(0),
            max_ttl=MAX_TTL,
        )
        # Host is never forwarded: API Gateway routes on its own execute-api host name.
        self.origin_request_policy = cloudfront.OriginRequestPolicy(
            self,
            "OriginRequestPolicy",
            comment="Raster API: all query strings, CORS preflight headers and Content-Type; never Host",
            query_string_behavior=cloudfront.OriginRequestQueryStringBehavior.all(),
            header_behavior=cloudfront.OriginRequestHeaderBehavior.allow_list(*FORWARDED_HEADERS),
            cookie_behavior=cloudfront.OriginRequestCookieBehavior.none(),
        )
        self.response_headers_policy = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="Raster API security headers",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(365), include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN, override=True
                ),
            ),
        )
        origin = origins.HttpOrigin(
            f"{props.api.api_id}.execute-api.{stack.region}.{stack.url_suffix}",
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
            # Resolved by CloudFormation at deploy time (a dynamic reference, not the value, is in the template).
            custom_headers={ORIGIN_VERIFY_HEADER: props.origin_verify_secret.secret_value.unsafe_unwrap()},
        )
        custom_domain = bool(props.domain_name and props.certificate_arn)
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"Raster tiles ({stack.stack_name})",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                # POST routes (statistics of a GeoJSON body) must reach the API; only GET/HEAD are ever cached.
                allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD,
                cache_policy=self.cache_policy,
                origin_request_policy=self.origin_request_policy,
                response_headers_policy=self.response_headers_policy,
                compress=True,
            ),
            domain_names=[props.domain_name] if custom_domain and props.domain_name else None,
            certificate=acm.Certificate.from_certificate_arn(self, "Certificate", props.certificate_arn)
            if custom_domain and props.certificate_arn
            else None,
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 if custom_domain else None,
            web_acl_id=props.web_acl_arn,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=props.price_class,
        )
        if props.additional_metrics:
            cloudfront.CfnMonitoringSubscription(
                self,
                "AdditionalMetrics",
                distribution_id=self.distribution.distribution_id,
                monitoring_subscription=cloudfront.CfnMonitoringSubscription.MonitoringSubscriptionProperty(
                    realtime_metrics_subscription_config=cloudfront.CfnMonitoringSubscription.RealtimeMetricsSubscriptionConfigProperty(
                        realtime_metrics_subscription_status="Enabled"
                    )
                ),
            )
        self.custom_domain = custom_domain
        self.url = (
            f"https://{props.domain_name}/"
            if custom_domain
            else f"https://{self.distribution.distribution_domain_name}/"
        )
