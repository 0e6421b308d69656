# The streamlet worker image: the package and its console script `streamlet`.
#
#   docker build -t streamlet:latest .
#
# docker-compose.yml builds it for its worker; deploy/k8s/ runs it as a StatefulSet with the
# topology script mounted from a ConfigMap (`streamlet run /app/topology.py`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamlet ./streamlet
RUN pip install --no-cache-dir .
COPY examples ./examples
CMD ["streamlet", "run", "examples/filter_route.py"]
