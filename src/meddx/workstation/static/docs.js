/* Starts the locally served Swagger UI on the workstation's OpenAPI description (no CDN, no
 * inline script: the page's content security policy allows scripts from this server only). */
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  window.ui = window.SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No validator badge: it would send the API description to validator.swagger.io.
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // Tokens last for this tab only, like the workstation's own sign-in.
    persistAuthorization: false,
  });
});
