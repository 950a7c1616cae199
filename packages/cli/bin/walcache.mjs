#!/usr/bin/env node
// Placeholder until the CLI lands (issue 6).
console.error('walcache CLI: not built yet');
process.exit(1);
