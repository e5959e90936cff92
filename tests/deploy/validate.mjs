// Validate rendered Kubernetes objects against the API schemas of npm kubernetes-models.
//   node validate.mjs OBJECTS.json      (a JSON array of objects, e.g. a rendered overlay)
// Prints one line per object and exits 1 when any object is invalid or of an unknown kind.
import { readFileSync } from "node:fs";

const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
let bad = 0;
for (const obj of objects) {
    const name = `${obj.kind}/${obj.metadata?.name} (${obj.apiVersion})`;
    const [group, version] = obj.apiVersion.includes("/")
        ? obj.apiVersion.split("/")
        : ["", obj.apiVersion];
    const module = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
    if (obj.kind === "Secret" && obj.data) {
        // kustomize wraps base64 at 76 columns; the API server's decoder (Go encoding/base64)
        // ignores those newlines, the schema's "byte" format does not.
        for (const k of Object.keys(obj.data)) obj.data[k] = obj.data[k].replace(/\n/g, "");
    }
    let Model;
    try {
        Model = (await import(`${module}/${obj.kind}`))[obj.kind];
    } catch (e) {
        console.log(`FAIL ${name}: no schema for this kind (${e.message})`);
        bad++;
        continue;
    }
    try {
        new Model(obj).validate();
        console.log(`ok   ${name}`);
    } catch (e) {
        console.log(`FAIL ${name}: ${e.message}`);
        bad++;
    }
}
console.log(`validate: ${objects.length - bad} valid, ${bad} invalid`);
process.exit(bad ? 1 : 0);
