using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Parley.Identity;

namespace Parley.Server.Identity;

// ASP0016 misreads the inner handler lambdas as request delegates (as in IdentityEndpoints.cs).
#pragma warning disable ASP0016
internal static partial class IdentityEndpoints
{
    // Groups (docs/protocol.md §10). A group name in a path has its '/' encoded as %2F, so each name is one
    // route segment (Kestrel leaves %2F encoded in the path; it is decoded here). A leading '@' is accepted.
    private static void MapGroups(IEndpointRouteBuilder app, IdentityService identity)
    {
        app.MapGet("/api/groups", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            var groups = await identity.ListGroupsAsync(caller, context.RequestAborted);
            return (StatusCodes.Status200OK, w => IdentityJson.WriteArray(w, "groups", groups, IdentityJson.WriteGroup));
        }));

        app.MapPost("/api/groups", context => HandleAuthenticatedAsync(context, identity, readBody: true, async (caller, body) =>
        {
            var group = await identity.CreateGroupAsync(caller, RequiredString(body, "name"), context.RequestAborted);
            var details = await identity.GetGroupAsync(caller, group.Name, context.RequestAborted);
            return (StatusCodes.Status201Created, w => IdentityJson.WriteGroupDetails(w, details));
        }));

        app.MapGet("/api/groups/{name}", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            var details = await identity.GetGroupAsync(caller, GroupParameter(context), context.RequestAborted);
            return (StatusCodes.Status200OK, w => IdentityJson.WriteGroupDetails(w, details));
        }));

        app.MapDelete("/api/groups/{name}", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            await identity.DeleteGroupAsync(caller, GroupParameter(context), context.RequestAborted);
            return (StatusCodes.Status200OK, static w => w.WriteBoolean("deleted", true));
        }));

        app.MapPost("/api/groups/{name}/members", context => HandleAuthenticatedAsync(context, identity, readBody: true, async (caller, body) =>
        {
            var isLead = body.TryGetProperty("lead", out var l) && l.ValueKind == JsonValueKind.True;
            await identity.AddGroupMemberAsync(caller, GroupParameter(context), RequiredString(body, "user"), isLead, context.RequestAborted);
            return (StatusCodes.Status200OK, w =>
            {
                w.WriteBoolean("added", true);
                w.WriteBoolean("lead", isLead);
            });
        }));

        app.MapDelete("/api/groups/{name}/members/{user}", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            await identity.RemoveGroupMemberAsync(caller, GroupParameter(context), (string)context.Request.RouteValues["user"]!, context.RequestAborted);
            return (StatusCodes.Status200OK, static w => w.WriteBoolean("removed", true));
        }));
    }

    private static string GroupParameter(HttpContext context) => Uri.UnescapeDataString((string)context.Request.RouteValues["name"]!);
}
