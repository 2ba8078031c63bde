"""The CDK app that deploys the raster API and the credential rotator (`cdk.json` at the repository root).

Runtime code never imports this package; it only describes AWS resources and packages the Lambda code.
"""
