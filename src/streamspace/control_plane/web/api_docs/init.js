// Swagger UI for the control plane's OpenAPI document, with FastAPI's default options. A file
// of its own, not an inline script: the page's Content-Security-Policy allows none. No
// validator: its badge would be an image from another host.
window.ui = SwaggerUIBundle({
  url: '/api/openapi.json',
  dom_id: '#swagger-ui',
  layout: 'BaseLayout',
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
