using System.Collections.Frozen;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Parley.Server.Web;

/// <summary>
/// The browser pages (docs/terminals.md, "In a browser"): <c>/terminals</c> (the live sessions) and
/// <c>/terminals/&lt;id&gt;</c> (one terminal), with their scripts and the vendored xterm.js and phoenix.js
/// under <c>/web/</c>. Everything is an embedded resource (Parley.Server.csproj), so the hub serves the same
/// bytes from any working directory. The pages talk to the hub only through the socket (term:lobby,
/// term:&lt;id&gt;, docs/protocol.md §17).
/// </summary>
internal static class WebPages
{
    /// <summary>Where the pages' scripts, styles and vendored modules are served.</summary>
    public const string AssetPrefix = "/web/";

    // Scripts, sockets and fetches only from the hub itself. Styles also allow inline <style> elements:
    // xterm.js's DOM renderer writes its theme and cell sizes into <style> elements it creates.
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; font-src 'self'; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private static readonly FrozenDictionary<string, Asset> Assets = Load();

    /// <summary>Maps the two pages and <see cref="AssetPrefix"/>.</summary>
    public static void Map(IEndpointRouteBuilder app)
    {
        string[] methods = [HttpMethods.Get, HttpMethods.Head];
        app.MapMethods("/terminals", methods, context => ServeAsync(context, "web/terminals.html"));
        app.MapMethods("/terminals/{id}", methods, context => ServeAsync(context, "web/terminal.html"));
        app.MapMethods(AssetPrefix + "{**path}", methods, context => ServeAsync(context, "web/" + (string?)context.Request.RouteValues["path"]));
    }

    private static Task ServeAsync(HttpContext context, string name)
    {
        var response = context.Response;
        if (!Assets.TryGetValue(name, out var asset))
        {
            response.StatusCode = StatusCodes.Status404NotFound;
            response.ContentType = "text/plain; charset=utf-8";
            return response.WriteAsync("not found\n", context.RequestAborted);
        }
        var headers = response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.CacheControl = "no-cache";
        headers.ETag = asset.ETag;
        if (context.Request.Headers.IfNoneMatch == asset.ETag)
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }
        response.ContentType = asset.ContentType;
        response.ContentLength = asset.Bytes.Length;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : response.Body.WriteAsync(asset.Bytes, context.RequestAborted).AsTask();
    }

    private static FrozenDictionary<string, Asset> Load()
    {
        var assembly = typeof(WebPages).Assembly;
        var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames())
        {
            if (!name.StartsWith("web/", StringComparison.Ordinal))
            {
                continue;
            }
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var bytes = copy.ToArray();
            assets[name] = new Asset(bytes, ContentTypeOf(name), "\"" + Convert.ToHexStringLower(SHA256.HashData(bytes).AsSpan(0, 12)) + "\"");
        }
        return assets.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private static string ContentTypeOf(string name) => Path.GetExtension(name) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".mjs" or ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    };

    private sealed record Asset(byte[] Bytes, string ContentType, string ETag);
}
