"""Development tools: a local AWS world on moto, an Earthdata Login emulator, sample COGs, an nginx cache standing in
for CloudFront, and the local stack runner.

Nothing here is bundled into the Lambdas; tests and benchmarks build on the same pieces so all three agree.
"""
