/** The asset row both baseline routes read, and the JSON shape Palisade answers with. */
export interface AssetRow {
  id: string;
  project_id: string;
  name: string;
  kind: string;
  created_at: Date;
}

export const ASSETS_SQL = `select id, project_id, name, kind, created_at from bench.assets
  where org_id = $1 and project_id = $2 order by created_at desc, id limit 20`;

export function assetsJson(rows: AssetRow[]) {
  return { assets: rows.map((r) => ({ id: r.id, projectId: r.project_id, name: r.name, kind: r.kind, createdAt: r.created_at.toISOString() })) };
}
