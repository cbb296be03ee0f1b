# MCP gateway: data plane on 8080, admin API on 8081 (bind it to 0.0.0.0 only behind a private network).
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production MCP_DATA_DIR=/data MCP_ADMIN_HOST=0.0.0.0
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 8080 8081
STOPSIGNAL SIGTERM
CMD ["node", "--max-semi-space-size=8", "--heap-growing-percent=20", "--experimental-strip-types", "--disable-warning=ExperimentalWarning", "main.ts"]
