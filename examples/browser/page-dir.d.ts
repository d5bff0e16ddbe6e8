/** The built page's folder (index.html, app.js, ort/). */
export declare const pageDir: string;
