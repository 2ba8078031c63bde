# The md function's image when `DEPLOY_BUNDLING=docker` (no pip on the synth machine): the same pip install as the
# local bundle, run by Docker at deploy time. Build context: the repository.
FROM public.ecr.aws/lambda/python:3.12
ARG REQUIREMENTS
ARG CONSTRAINTS
COPY providers ${LAMBDA_TASK_ROOT}/providers
COPY raster_api ${LAMBDA_TASK_ROOT}/raster_api
RUN printf '%s\n' ${CONSTRAINTS} > /tmp/constraints.txt \
    && pip install --no-cache-dir --only-binary=:all: --constraint /tmp/constraints.txt \
        --target ${LAMBDA_TASK_ROOT} ${REQUIREMENTS} \
    && python -m compileall -q -b ${LAMBDA_TASK_ROOT} \
    && rm /tmp/constraints.txt
CMD ["raster_api.handler.handler"]
