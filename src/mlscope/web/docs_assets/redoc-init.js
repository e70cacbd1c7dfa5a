// Starts ReDoc on the OpenAPI document the page names in data-openapi-url (the CSP allows no inline script).
const root = document.getElementById("redoc");
document.body.style.margin = "0";
Redoc.init(root.dataset.openapiUrl, {}, root);
