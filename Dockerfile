FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY projections ./projections
COPY api ./api
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["sanctions", "serve", "--host", "0.0.0.0", "--port", "8000", "--seed"]
