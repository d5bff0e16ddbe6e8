export interface BundleSize {
  name: string;
  /** Minified bytes, and gzipped. */
  bytes: number;
  gzip: number;
  /** Node built-ins the bundle reached (none allowed). */
  nodeBuiltins: string[];
  /** TensorFlow.js modules the bundle reached (none unless asked for). */
  tfjs: string[];
  /** Node globals lowrank's own browser code uses (none allowed). */
  globals: string[];
}
export declare function measureBundle(name: string): Promise<BundleSize>;
export declare const BROWSER_PACKAGES: string[];
