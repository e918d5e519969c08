import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildOpenApiDocument } from "../src/http/openapi-document.js";

// `npm run openapi`: writes public/openapi.json from the Valibot schemas. The Worker serves it as a
// static asset (outside its bundle, which has a size budget), Node and Lambda from the app; none
// carries a JSON Schema converter. A test fails when the file and the schemas disagree.
const file = fileURLToPath(new URL("../public/openapi.json", import.meta.url));
writeFileSync(file, `${JSON.stringify(await buildOpenApiDocument(), null, 2)}\n`);
console.log(`wrote ${file}`);
