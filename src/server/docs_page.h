/* docs_page.h: the HTML API reference served at /docs and /redoc. The original's FastAPI pages
 * (Swagger UI, ReDoc) load their scripts from a CDN; this page is self-contained: it renders
 * /openapi.json (the OpenAPI document, formerly known as Swagger) with a few lines of script. */
#ifndef CRL_SERVER_DOCS_PAGE_H
#define CRL_SERVER_DOCS_PAGE_H

static const char crl_docs_page[] =
    "<!DOCTYPE html>\n"
    "<html><head><meta charset=\"utf-8\"><title>carla-rl-serving API</title>\n"
    "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
    "h2{font-size:1.1em;margin-top:1.5em}code,pre{background:#f4f4f4;padding:.1em .3em}"
    "pre{padding:.6em;overflow:auto}.m{font-weight:bold;text-transform:uppercase}</style>\n"
    "</head><body>\n"
    "<h1>carla-rl-serving API</h1>\n"
    "<p>The OpenAPI (Swagger) description of this server is at "
    "<a href=\"/openapi.json\">/openapi.json</a>; load it into any OpenAPI tool (Swagger UI, "
    "ReDoc, client generators). This page, served at /docs and /redoc, lists it.</p>\n"
    "<div id=\"api\">Loading /openapi.json ...</div>\n"
    "<script>\n"
    "function esc(s){return "
    "String(s).replace(/[&<>]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]))}\n"
    "fetch('/openapi.json').then(r=>r.json()).then(spec=>{\n"
    " let h='<p>'+esc(spec.info.description)+' &mdash; version '+esc(spec.info.version)+'</p>';\n"
    " for(const [path,ops] of Object.entries(spec.paths)) for(const [m,op] of "
    "Object.entries(ops)){\n"
    "  h+='<h2><span class=m>'+esc(m)+'</span> "
    "<code>'+esc(path)+'</code></h2><p>'+esc(op.summary)+'</p>';\n"
    "  const rb=op.requestBody&&op.requestBody.content['application/json'];\n"
    "  if(rb) h+='<p>Request body: <code>'+esc(rb.schema.$ref.split('/').pop())+'</code></p>';\n"
    "  h+='<p>Responses: '+Object.keys(op.responses).map(esc).join(', ')+'</p>';\n"
    " }\n"
    " h+='<h2>Schemas</h2><pre>'+esc(JSON.stringify(spec.components.schemas,null,1))+'</pre>';\n"
    " document.getElementById('api').innerHTML=h;\n"
    "}).catch(e=>{document.getElementById('api').textContent='cannot load /openapi.json: '+e});\n"
    "</script>\n"
    "</body></html>\n";

#endif
